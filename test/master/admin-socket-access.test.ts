import t from "tap";
import { gidInGroupFile, socketDirectoryProblem } from "../../src/master/admin-socket-access.js";

t.test("the admin socket's directory: nobody else may write it", (t) => {
  const ok: [number, number][] = [
    [0o40755, 0],
    [0o40700, 1000],
    [0o40770, 0], // the group may: its members are admins or root chose so
  ];
  for (const [mode, uid] of ok) t.equal(socketDirectoryProblem("/run/abs", mode, uid, 1000), null);
  t.equal(
    socketDirectoryProblem("/tmp", 0o41777, 0, 0),
    "the directory of admin_socket /tmp is writable by others (mode 1777) (the sticky bit does not keep out a socket made while the master is down): anyone could replace the socket and read or answer admin requests; use a directory of its own, mode 0755 (such as /run/abs)",
  );
  t.equal(
    socketDirectoryProblem("/srv/x", 0o40777, 0, 0),
    "the directory of admin_socket /srv/x is writable by others (mode 0777): anyone could replace the socket and read or answer admin requests; use a directory of its own, mode 0755 (such as /run/abs)",
  );
  t.equal(
    socketDirectoryProblem("/home/eve", 0o40755, 1001, 0),
    "the directory of admin_socket /home/eve belongs to uid 1001, neither root nor the master's user (uid 0), who could make it writable; use a directory of its own, owned by root or the master's user",
  );
  t.end();
});

t.test("a group's gid from /etc/group's text", (t) => {
  const text =
    "root:x:0:\nadm:x:4:syslog\n# no comments in this file, but\nabs-admin:x:998:alice,bob\nbad:x:\n";
  t.equal(gidInGroupFile(text, "abs-admin"), 998);
  t.equal(gidInGroupFile(text, "adm"), 4);
  t.equal(gidInGroupFile(text, "abs"), undefined, "no prefix match");
  t.equal(gidInGroupFile(text, "bad"), undefined, "no gid");
  t.end();
});
