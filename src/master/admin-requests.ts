// Admin requests that change something are safe to retry (DESIGN.md, "Admin
// requests are safe to retry"). Each carries a request id its client chose,
// the same in every retry. The first request with an id is done and its
// answer recorded durably; a repeat is answered from the record and changes
// nothing; the id used again with other arguments is refused. A repeat that
// arrives while the first is still being done waits for its answer.
//
// Where the change is a job write (run, cancel), the handler has the store
// write the record in the same write (job-store.ts, submitAll and update's
// `request`); for the rest the record is written here, right after the
// change.

import { AbsError } from "../errors.js";
import type { JsonValue } from "../json-shape.js";
import { type RequestLookup, RequestRecords, type RequestTag } from "../jobsdir/request-records.js";

/** Where the records are kept: the jobs directory (JobStore), or memory for the fake master. */
export interface RequestLog {
  lookupRequest(tag: RequestTag): RequestLookup;
  recordRequest(tag: RequestTag, reply: JsonValue): Promise<void>;
}

export class RequestIdReusedError extends AbsError {
  constructor(tag: RequestTag, first: { method: string; at: number | null }) {
    const when =
      first.at === null ? "by a request still under way" : `at ${new Date(first.at).toISOString()}`;
    super(
      "REQUEST_ID_REUSED",
      `request id ${tag.id} was used ${when} for ${first.method} with other arguments; a new request needs a new id`,
      { context: { field: "requestId" } },
    );
  }
}

interface InFlight {
  tag: RequestTag;
  reply: Promise<JsonValue>;
}

export class RequestGate {
  private readonly inFlight = new Map<string, InFlight>();

  constructor(private readonly log: RequestLog) {}

  /**
   * Does `work` for the request `tag` once: answers its result, or the
   * recorded one for a repeat (`repeat` true then).
   */
  async run(
    tag: RequestTag,
    work: () => Promise<JsonValue>,
  ): Promise<{ result: JsonValue; repeat: boolean }> {
    const seen = this.log.lookupRequest(tag);
    if (seen.kind === "reused") throw new RequestIdReusedError(tag, seen.record);
    if (seen.kind === "repeat") return { result: seen.record.reply, repeat: true };
    const running = this.inFlight.get(tag.id);
    if (running !== undefined) {
      if (!sameRequest(running.tag, tag)) {
        throw new RequestIdReusedError(tag, { method: running.tag.method, at: null });
      }
      return { result: await running.reply, repeat: true };
    }
    const reply = (async () => {
      const result = await work();
      // Unless the handler had it written with its jobs.
      if (this.log.lookupRequest(tag).kind === "new") await this.log.recordRequest(tag, result);
      return result;
    })();
    this.inFlight.set(tag.id, { tag, reply });
    try {
      return { result: await reply, repeat: false };
    } finally {
      this.inFlight.delete(tag.id);
    }
  }
}

function sameRequest(a: RequestTag, b: RequestTag): boolean {
  return a.method === b.method && a.digest === b.digest;
}

/** Records in memory only, for the fake master (stateless by design: a restart forgets them). */
export class MemoryRequestLog implements RequestLog {
  private readonly records = new RequestRecords();

  constructor(private readonly clock: () => number = Date.now) {}

  lookupRequest(tag: RequestTag): RequestLookup {
    return this.records.lookup(tag);
  }

  recordRequest(tag: RequestTag, reply: JsonValue): Promise<void> {
    this.records.add({ ...tag, at: this.clock(), reply });
    this.records.expire(this.clock());
    return Promise.resolve();
  }
}
