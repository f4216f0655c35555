// The slaves the master has seen, for `abs show slaves`, kept across
// restarts in the jobs directory's slaves.json (owned by the JobStore).
//
// Saves are coalesced: a burst of registrations (a thousand slaves coming
// back after a master restart) writes the file a few times, not a thousand.
// The registry is informational; losing its last second in a crash loses
// nothing a slave will not tell again when it registers.

import { describeError } from "../errors.js";
import type { JobStore } from "../jobsdir/job-store.js";
import type { SlaveRecord } from "../jobsdir/state-files.js";
import type { Logger } from "../log.js";

export class SlaveRegistry {
  private readonly records = new Map<string, SlaveRecord>();
  private saving: Promise<void> | null = null;
  private dirty = false;
  private closed = false;

  constructor(
    private readonly store: JobStore,
    private readonly logger: Logger,
  ) {
    for (const r of store.slaves) this.records.set(r.name, r);
  }

  get(name: string): SlaveRecord | undefined {
    return this.records.get(name);
  }

  all(): SlaveRecord[] {
    return [...this.records.values()].sort((a, b) => a.name.localeCompare(b.name));
  }

  /** Records what is known of a slave now and saves it soon. */
  note(record: SlaveRecord): void {
    this.records.set(record.name, record);
    // After close (the master stopping, its slaves' connections closing one
    // by one) the jobs directory is closed: kept in memory only.
    if (this.closed) return;
    this.dirty = true;
    this.saving ??= this.saveLoop();
  }

  /** Resolves once everything noted so far is saved. */
  async flush(): Promise<void> {
    while (this.saving !== null) await this.saving;
  }

  /** Saves what was noted and saves nothing more: the jobs directory closes next. */
  async close(): Promise<void> {
    await this.flush();
    this.closed = true;
  }

  private async saveLoop(): Promise<void> {
    // Let the rest of a burst arrive before the first write.
    await new Promise<void>((resolve) => setImmediate(resolve));
    while (this.dirty) {
      this.dirty = false;
      try {
        await this.store.saveSlaves(this.all());
      } catch (err) {
        this.logger.error(`cannot save the slave registry: ${describeError(err)}`);
      }
    }
    this.saving = null;
  }
}
