// The StrictModes check, pure: which owners and modes a daemon refuses, and
// what it says. (The daemons refusing real files: test/master/trusted-config.test.ts.)

import t from "tap";
import { trustProblem } from "../../src/storage/trusted-file.js";

t.test("owned by root or the daemon's user, writable by neither group nor others", (t) => {
  const f = "/etc/abs/jobs.d/home.conf";
  const cases: [number, number, number, string | null][] = [
    // uid of the file, mode, daemon's uid, the reason (null: trusted)
    [0, 0o100644, 0, null],
    [0, 0o100600, 0, null],
    [0, 0o100444, 999, null],
    [999, 0o100640, 999, null],
    [0, 0o040755, 0, null],
    [
      0,
      0o100666,
      0,
      "writable by group and others (mode 0666): anyone among them could change it; run `chmod go-w /etc/abs/jobs.d/home.conf`",
    ],
    [
      0,
      0o100664,
      0,
      "writable by group (mode 0664): anyone among them could change it; run `chmod go-w /etc/abs/jobs.d/home.conf`",
    ],
    [
      999,
      0o100602,
      999,
      "writable by others (mode 0602): anyone among them could change it; run `chmod go-w /etc/abs/jobs.d/home.conf`",
    ],
    [
      0,
      0o041777,
      0,
      "writable by group and others (mode 1777): anyone among them could change it; run `chmod go-w /etc/abs/jobs.d/home.conf`",
    ],
    [
      65534,
      0o100644,
      0,
      "owned by uid 65534, not by root: anyone with that uid could change it; run `chown root /etc/abs/jobs.d/home.conf` if its content is right",
    ],
    [
      1000,
      0o100600,
      999,
      "owned by uid 1000, not by root or uid 999 (this daemon's user): anyone with that uid could change it; run `chown 999 /etc/abs/jobs.d/home.conf` if its content is right",
    ],
  ];
  for (const [uid, mode, daemon, why] of cases) {
    t.equal(
      trustProblem(f, { uid, mode }, daemon),
      why,
      `uid ${uid} mode ${mode.toString(8)} for ${daemon}`,
    );
  }
  t.end();
});
