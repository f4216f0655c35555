// Names of everything in a jobs directory (see DESIGN.md, "The jobs
// directory"). Pure: no file system access here.
//
//   version                 format version; a mismatch stops startup
//   serial                  last job id handed out; written before the id is used
//   lock                    held by the running master (pid, host, boot)
//   drain                   present = new submissions refused
//   job-<id>.json           one job
//   archive/<id/10000>/job-<id>.json   finished jobs moved out of the way
//   quarantine/             files that could not be used, moved aside at load
//   schedule-state.json     last trigger per job definition (the master's)
//   slaves.json             the slaves that have registered
//   requests                admin requests that changed something, by request id (request-records.ts)
//   .tmp-*                  a write in progress; removed at load

import path from "node:path";

/** The format version this code reads and writes. */
export const JOBSDIR_VERSION = 1;

export const VERSION_FILE = "version";
export const SERIAL_FILE = "serial";
export const LOCK_FILE = "lock";
export const DRAIN_FILE = "drain";
export const ARCHIVE_DIR = "archive";
export const QUARANTINE_DIR = "quarantine";
export const SCHEDULE_STATE_FILE = "schedule-state.json";
export const SLAVES_FILE = "slaves.json";
export const DISASTER_IMPORTS_FILE = "disaster-imports.json";
export const REQUESTS_FILE = "requests";
export const TEMP_PREFIX = ".tmp-";

/** Jobs per archive subdirectory, as in Ganeti's job queue. */
export const ARCHIVE_BUCKET = 10000;

/** Files of the jobs directory that are not job files but belong there. */
export const KNOWN_FILES: ReadonlySet<string> = new Set([
  VERSION_FILE,
  SERIAL_FILE,
  LOCK_FILE,
  DRAIN_FILE,
  SCHEDULE_STATE_FILE,
  SLAVES_FILE,
  DISASTER_IMPORTS_FILE,
  REQUESTS_FILE,
]);

export function jobFileName(id: number): string {
  return `job-${id}.json`;
}

const JOB_FILE_RE = /^job-([1-9][0-9]{0,15})\.json$/;

/** The id a job file name stands for, or null when the name is not a job file's. */
export function jobIdFromFileName(name: string): number | null {
  const m = JOB_FILE_RE.exec(name);
  if (m === null) return null;
  const id = Number(m[1]);
  return Number.isSafeInteger(id) ? id : null;
}

/** `archive/<bucket>` relative to the jobs directory. */
export function archiveBucket(id: number): string {
  return path.join(ARCHIVE_DIR, String(Math.floor(id / ARCHIVE_BUCKET)));
}

export function isTempName(name: string): boolean {
  return name.startsWith(TEMP_PREFIX);
}
