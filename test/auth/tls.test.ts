// TLS material: the master's self-signed certificate (made once, reused),
// configured certificates, fingerprints (checked against openssl when it is
// installed), and the slave's TLS options.

import { execFile } from "node:child_process";
import { X509Certificate } from "node:crypto";
import { chmod, readFile, rm, stat, writeFile } from "node:fs/promises";
import path from "node:path";
import { promisify } from "node:util";
import { refusal } from "../helpers/refusal.js";
import t from "tap";
import {
  GENERATED_CERT_FILE,
  GENERATED_KEY_FILE,
  certificateFingerprint,
  compileSlaveTls,
  fingerprintsEqual,
  loadOrCreateMasterTls,
  readCertificateFingerprint,
} from "../../src/auth/tls.js";
import { realFsOps } from "../../src/storage/fs-ops.js";
import { tempDir } from "../helpers/tmp.js";

const execFileP = promisify(execFile);

async function openssl(): Promise<boolean> {
  try {
    await execFileP("openssl", ["version"]);
    return true;
  } catch {
    return false;
  }
}

t.test("the master makes a self-signed certificate once and reuses it", async (t) => {
  const dir = path.join(tempDir(t), "state"); // created on demand
  const first = await loadOrCreateMasterTls({ stateDir: dir, hostName: "backup.example.com" });
  t.equal(first.created, true);
  t.equal(first.certFile, path.join(dir, GENERATED_CERT_FILE));
  t.equal(first.keyFile, path.join(dir, GENERATED_KEY_FILE));
  t.equal((await stat(first.keyFile)).mode & 0o777, 0o600, "key file mode 0600");
  t.equal((await stat(dir)).mode & 0o777, 0o700, "state dir made 0700");

  const x509 = new X509Certificate(first.cert);
  t.equal(x509.subject, "CN=backup.example.com");
  t.equal(x509.subjectAltName, "DNS:backup.example.com");
  t.equal(x509.publicKey.asymmetricKeyType, "ec");
  t.equal(x509.publicKey.asymmetricKeyDetails?.namedCurve, "prime256v1");
  const years = (Date.parse(x509.validTo) - Date.now()) / (365 * 24 * 3600 * 1000);
  t.ok(years > 19, `valid for about 20 years (${years.toFixed(1)})`);
  t.equal(first.fingerprint, x509.fingerprint256);

  const again = await loadOrCreateMasterTls({ stateDir: dir, hostName: "backup.example.com" });
  t.equal(again.created, false);
  t.equal(again.fingerprint, first.fingerprint, "the same certificate after a restart");

  const ip = await loadOrCreateMasterTls({ stateDir: path.join(dir, "ip"), hostName: "192.0.2.7" });
  t.equal(new X509Certificate(ip.cert).subjectAltName, "IP Address:192.0.2.7");
});

t.test(
  "a generated certificate and key survive a host crash right after they are made",
  async (t) => {
    // A crash of the host keeps a rename only once its directory is fsynced:
    // this fs records which renamed names a crash at each moment would keep.
    const dir = path.join(tempDir(t), "state");
    const renamedSinceFsync = new Set<string>();
    const durable = new Set<string>();
    const fs = {
      ...realFsOps,
      async rename(from: string, to: string) {
        await realFsOps.rename(from, to);
        durable.delete(to);
        renamedSinceFsync.add(to);
      },
      async fsyncDir(d: string) {
        await realFsOps.fsyncDir(d);
        for (const file of renamedSinceFsync) {
          if (path.dirname(file) === d) {
            durable.add(file);
            renamedSinceFsync.delete(file);
          }
        }
      },
    };
    // A variable, not a literal, so that this compiles where the option is unknown.
    const opts = { stateDir: dir, hostName: "backup.example.com", fs };
    const made = await loadOrCreateMasterTls(opts);
    t.equal(made.created, true);
    t.same([...renamedSinceFsync], [], "no rename left without a directory fsync");
    t.ok(durable.has(made.certFile), `${made.certFile} durable once made`);
    t.ok(durable.has(made.keyFile), `${made.keyFile} durable once made`);
    const onDisk = await readFile(made.certFile, "utf8");
    t.equal(onDisk, made.cert, "the certificate file is complete");
    t.equal(new X509Certificate(onDisk).fingerprint256, made.fingerprint, "and valid");
  },
);

t.test("configured or broken material", async (t) => {
  const dir = tempDir(t);
  const made = await loadOrCreateMasterTls({ stateDir: dir, hostName: "m" });
  const configured = await loadOrCreateMasterTls({
    stateDir: path.join(dir, "unused"),
    hostName: "m",
    certFile: made.certFile,
    keyFile: made.keyFile,
  });
  t.equal(configured.fingerprint, made.fingerprint);
  t.equal(configured.created, false);

  const half = await refusal(
    loadOrCreateMasterTls({ stateDir: dir, hostName: "m", certFile: made.certFile }),
  );
  t.equal(half.code, "CONFIG");
  t.match(half.message, /configure both tls_cert and tls_key, or neither/);

  await chmod(made.keyFile, 0o640);
  const open = await refusal(loadOrCreateMasterTls({ stateDir: dir, hostName: "m" }));
  t.match(open.message, /TLS private key .*tls-key\.pem has mode 0640: .*chmod 600/);
  await chmod(made.keyFile, 0o600);

  await rm(made.keyFile);
  const lone = await refusal(loadOrCreateMasterTls({ stateDir: dir, hostName: "m" }));
  t.match(lone.message, /tls-cert\.pem exists but .*tls-key\.pem does not/);

  const missing = await refusal(
    loadOrCreateMasterTls({
      stateDir: dir,
      hostName: "m",
      certFile: path.join(dir, "no.pem"),
      keyFile: made.keyFile,
    }),
  );
  t.match(missing.message, /^TLS certificate .*no\.pem does not exist$/);
});

t.test("fingerprints", async (t) => {
  const dir = tempDir(t);
  const made = await loadOrCreateMasterTls({ stateDir: dir, hostName: "m" });
  const fp = await readCertificateFingerprint(made.certFile);
  t.match(fp, /^(?:[0-9A-F]{2}:){31}[0-9A-F]{2}$/);
  t.equal(certificateFingerprint(new X509Certificate(made.cert).raw), fp, "DER gives the same");
  t.ok(fingerprintsEqual(fp, fp.toLowerCase()));
  t.notOk(
    fingerprintsEqual(
      fp,
      fp.replace(/^../, "00") === fp ? fp.replace(/^../, "11") : fp.replace(/^../, "00"),
    ),
  );
  t.notOk(fingerprintsEqual(fp, fp.slice(3)));

  await writeFile(path.join(dir, "junk.pem"), "not a certificate\n");
  const junk = await refusal(readCertificateFingerprint(path.join(dir, "junk.pem")));
  t.equal(junk.message, `${path.join(dir, "junk.pem")} is not a PEM or DER X.509 certificate`);

  t.test(
    "equals openssl's",
    { skip: !(await openssl()) && "openssl is not installed" },
    async (t) => {
      const { stdout } = await execFileP("openssl", [
        "x509",
        "-noout",
        "-fingerprint",
        "-sha256",
        "-in",
        made.certFile,
      ]);
      t.equal(stdout.trim().split("=")[1], fp);
    },
  );
});

t.test("the slave's TLS options", async (t) => {
  const dir = tempDir(t);
  const made = await loadOrCreateMasterTls({ stateDir: dir, hostName: "m" });

  const pinned = await compileSlaveTls({ pin: made.fingerprint.toLowerCase() }, "kerberos");
  t.equal(pinned.pin, made.fingerprint, "normalised to upper case");

  const ca = await compileSlaveTls({ ca: made.certFile }, "kerberos");
  t.equal(ca.caPem, await readFile(made.certFile, "utf8"));

  const neither = await compileSlaveTls({}, "realm-key");
  t.same(
    neither,
    { pin: undefined, caFile: undefined, caPem: undefined },
    "realm-key may go without",
  );

  const kerberos = await refusal(compileSlaveTls({}, "kerberos"));
  t.equal(kerberos.code, "CONFIG");
  t.match(
    kerberos.message,
    /^Kerberos authentication needs master_fingerprint or master_ca: the Kerberos exchange is not bound to the TLS session/,
  );

  const badPin = await refusal(compileSlaveTls({ pin: "AB:CD" }, "realm-key"));
  t.match(badPin.message, /master fingerprint "AB:CD" is not a SHA-256 fingerprint/);

  await writeFile(path.join(dir, "empty.pem"), "");
  const badCa = await refusal(compileSlaveTls({ ca: path.join(dir, "empty.pem") }, "realm-key"));
  t.match(badCa.message, /CA file .*empty\.pem holds no PEM certificate/);
  const noCa = await refusal(compileSlaveTls({ ca: path.join(dir, "nope.pem") }, "realm-key"));
  t.match(noCa.message, /CA file .*nope\.pem does not exist/);
});
