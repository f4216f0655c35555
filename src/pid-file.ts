// A daemon's pid file, for init systems and scripts (`kill -HUP $(cat ...)`).
// It is informational: the jobs directory's lock is what keeps a second
// master out, so a pid file left by a crash is simply replaced.

import { chmod, readFile, rename, unlink, writeFile } from "node:fs/promises";
import path from "node:path";
import { AbsError, describeError } from "./errors.js";

export async function writePidFile(file: string): Promise<void> {
  const temp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}`);
  try {
    await writeFile(temp, `${process.pid}\n`);
    await chmod(temp, 0o644); // readable by all, whatever the umask
    await rename(temp, file);
  } catch (err) {
    await unlink(temp).catch(() => undefined);
    throw new AbsError("FILE_IO", `cannot write the pid file ${file}: ${describeError(err)}`, {
      context: { file },
    });
  }
}

/** Removes the pid file if it still names this process. */
export async function removePidFile(file: string): Promise<void> {
  const text = await readFile(file, "utf8").catch(() => "");
  if (text.trim() === String(process.pid)) await unlink(file).catch(() => undefined);
}
