// The master's small state files beside the jobs (state-files.ts has their
// formats): the schedule's last triggers, the slaves that have registered,
// what disaster-log imports recorded, and the drain flag. Each is replaced
// whole, atomically and durably; what is held here is what was last saved.

import path from "node:path";
import { JobsDirIoError, describeError } from "../errors.js";
import { type FsOps, hasCode } from "../storage/fs-ops.js";
import { commitFile } from "./durable-files.js";
import { DISASTER_IMPORTS_FILE, DRAIN_FILE, SCHEDULE_STATE_FILE, SLAVES_FILE } from "./layout.js";
import type { ImportedAttempt, ScheduleState, SlaveRecord } from "./state-files.js";

export class SideFiles {
  private lastTriggers: ScheduleState;
  private slaveRecords: SlaveRecord[];
  private disasterImports: ImportedAttempt[];
  private isDrained: boolean;

  constructor(
    private readonly dir: string,
    private readonly fs: FsOps,
    private readonly clock: () => number,
    loaded: {
      scheduleState: ScheduleState;
      slaves: SlaveRecord[];
      disasterImports: ImportedAttempt[];
      drained: boolean;
    },
  ) {
    this.lastTriggers = loaded.scheduleState;
    this.slaveRecords = loaded.slaves;
    this.disasterImports = loaded.disasterImports;
    this.isDrained = loaded.drained;
  }

  get scheduleState(): Readonly<ScheduleState> {
    return this.lastTriggers;
  }

  get slaves(): readonly SlaveRecord[] {
    return this.slaveRecords;
  }

  get importedAttempts(): readonly ImportedAttempt[] {
    return this.disasterImports;
  }

  get drained(): boolean {
    return this.isDrained;
  }

  async saveScheduleState(lastTriggers: ScheduleState): Promise<void> {
    await commitFile(this.fs, this.dir, SCHEDULE_STATE_FILE, JSON.stringify(lastTriggers) + "\n");
    this.lastTriggers = { ...lastTriggers };
  }

  async saveSlaves(slaves: readonly SlaveRecord[]): Promise<void> {
    await commitFile(this.fs, this.dir, SLAVES_FILE, JSON.stringify(slaves) + "\n");
    this.slaveRecords = [...slaves];
  }

  async saveImportedAttempts(imports: readonly ImportedAttempt[]): Promise<void> {
    await commitFile(this.fs, this.dir, DISASTER_IMPORTS_FILE, JSON.stringify(imports) + "\n");
    this.disasterImports = [...imports];
  }

  /** The drain file's presence is the flag: written with the time, or removed. */
  async setDrain(on: boolean): Promise<void> {
    if (on) {
      await commitFile(
        this.fs,
        this.dir,
        DRAIN_FILE,
        `drained since ${new Date(this.clock()).toISOString()}\n`,
      );
    } else {
      const file = path.join(this.dir, DRAIN_FILE);
      try {
        await this.fs.unlink(file);
        await this.fs.fsyncDir(this.dir);
      } catch (err) {
        if (!hasCode(err, "ENOENT")) {
          throw new JobsDirIoError(`cannot remove ${file}: ${describeError(err)}`, file, err);
        }
      }
    }
    this.isDrained = on;
  }
}
