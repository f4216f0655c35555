// The job-runner interface of the backup methods: what the slave passes in
// (cancel signal, progress sink, allowed paths and programs, clock), what a
// method returns (one line for people, a JSON object for the master), and
// how a method stops on cancel. A method either returns a result or throws
// an AbsError; it never exits the process. Apart from method.ts, which picks
// the method a dispatch names and so imports every method: the methods
// import this file, never method.ts.

import type { JsonObject } from "../../json-shape.js";
import { AbsError } from "../../errors.js";
import type { RunAllowlist } from "./allowed-programs.js";
import type { FileOpener } from "./source-file-reader.js";
import type { ManifestCache } from "./manifest-cache.js";

/** Progress of a running method, as streamed to the master. */
export interface Progress {
  /** Entries (tar, restore, verify) or output lines (command) handled so far. */
  files: number;
  /** Bytes of file content handled so far. */
  bytes: number;
  /** The path being handled now ("" when none). */
  path: string;
}

export interface MethodContext {
  /** Aborted on cancel or when the job's max run time passes: the method stops promptly. */
  signal: AbortSignal;
  /** Receives progress at most every `PROGRESS_INTERVAL_MS` (250 ms) and once at the end. */
  onProgress(p: Progress): void;
  /**
   * Absolute paths the method may read or write under: every source,
   * destination and target must be one of them or inside one.
   */
  allowedPaths: readonly string[];
  /** The methods and programs the slave allows (allowed_methods, allowed_programs): runMethod and `command` check them. */
  allowedToRun: RunAllowlist;
  /** Milliseconds since the epoch; the backup's timestamp and the progress rate come from it. */
  now(): number;
  /**
   * The job definition's name (`[job NAME]`). `tar` names its archives after
   * it and finds the previous backup of the same definition by it. Required by `tar`.
   */
  definition?: string;
  /** `command`'s working directory when `command.cwd` is not set. Default: the process's cwd. */
  workDir?: string;
  /** Milliseconds between SIGTERM and SIGKILL when a command is stopped. Default 5,000. */
  killGraceMs?: number;
  /** How file contents are opened for reading (tests count reads through it). Default: `openForReading` (synchronous calls). */
  openFile?: FileOpener;
  /** Where `tar` keeps the manifests it wrote (tests look into it). Default: the process's (manifest-cache.ts). */
  manifestCache?: ManifestCache;
}

export interface MethodResult {
  /** One line for people: what was done. */
  message: string;
  /** Details for the master: archive and manifest names, counts, exit status... */
  data: JsonObject;
}

/** Throws CANCELED when the job's signal is aborted; called between steps. */
export function throwIfCanceled(signal: AbortSignal, what: string): void {
  if (signal.aborted) throw canceledError(signal, what);
}

export function canceledError(signal: AbortSignal, what: string): AbsError {
  const reason: unknown = signal.reason;
  const why = reason instanceof Error && reason.name !== "AbortError" ? `: ${reason.message}` : "";
  return new AbsError("CANCELED", `${what} canceled${why}`, { cause: reason });
}
