// The real file operations, but the durable writes (writeSynced) of the
// files `holds` picks wait until `release`: a test holds a write of the jobs
// directory or of the slave's state directory and looks at what happens
// meanwhile.

import { type FsOps, realFsOps } from "../../src/storage/fs-ops.js";

export interface HeldWrites {
  fs: FsOps;
  /** Resolves when the first held write has begun. */
  held: Promise<void>;
  /** Lets every held write, and those to come, go on. */
  release: () => void;
}

export function heldWrites(holds: (file: string) => boolean): HeldWrites {
  let release: () => void = () => undefined;
  const gate = new Promise<void>((resolve) => (release = resolve));
  let started: () => void = () => undefined;
  const held = new Promise<void>((resolve) => (started = resolve));
  const fs: FsOps = {
    ...realFsOps,
    async writeSynced(file, data) {
      if (holds(file)) {
        started();
        await gate;
      }
      return realFsOps.writeSynced(file, data);
    },
  };
  return { fs, held, release };
}
