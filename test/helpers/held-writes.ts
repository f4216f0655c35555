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
  /**
   * Resolves once no write other than the held ones is under way (at once
   * if none is): whatever could be written beside them has been.
   */
  othersDone: () => Promise<void>;
}

export function heldWrites(holds: (file: string) => boolean): HeldWrites {
  let release: () => void = () => undefined;
  const gate = new Promise<void>((resolve) => (release = resolve));
  let started: () => void = () => undefined;
  const held = new Promise<void>((resolve) => (started = resolve));
  let others = 0;
  let idle: (() => void)[] = [];
  const fs: FsOps = {
    ...realFsOps,
    async writeSynced(file, data) {
      if (holds(file)) {
        started();
        await gate;
        return realFsOps.writeSynced(file, data);
      }
      others += 1;
      try {
        return await realFsOps.writeSynced(file, data);
      } finally {
        others -= 1;
        if (others === 0) {
          const woken = idle;
          idle = [];
          for (const wake of woken) wake();
        }
      }
    },
  };
  const othersDone = (): Promise<void> =>
    others === 0 ? Promise.resolve() : new Promise((resolve) => idle.push(resolve));
  return { fs, held, release, othersDone };
}
