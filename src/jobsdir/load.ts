// Opening a jobs directory (DESIGN.md, "The jobs directory"): its lock, its
// version, the listing, temp files left by a crash removed, files that
// cannot be used quarantined, every job parsed, the serial read, the side
// files read, and the jobs of admin requests whose files a crash kept from
// being written, written again from their records. The store (job-store.ts)
// starts from what this loads.

import path from "node:path";
import {
  AbsError,
  JobsDirIoError,
  JobsDirLockedError,
  JobsDirVersionError,
  describeError,
} from "../errors.js";
import { ShapeError } from "../json-shape.js";
import { type Logger } from "../log.js";
import { commitFile, commitFiles } from "./durable-files.js";
import { FileReaderThread, looksLarge } from "./file-reader.js";
import { type FsOps, hasCode, realFsOps } from "../storage/fs-ops.js";
import { type Job } from "./job.js";
import { parseJobFile, parseJobValue, serializeJob } from "./job-file.js";
import { type RequestRecord, RequestRecords, parseRequests } from "./request-records.js";

import {
  type ImportedAttempt,
  type ScheduleState,
  type SlaveRecord,
  parseDisasterImports,
  parseScheduleState,
  parseSlaveRegistry,
} from "./state-files.js";
import {
  ARCHIVE_DIR,
  DRAIN_FILE,
  JOBSDIR_VERSION,
  KNOWN_FILES,
  LOCK_FILE,
  QUARANTINE_DIR,
  SCHEDULE_STATE_FILE,
  SERIAL_FILE,
  SLAVES_FILE,
  DISASTER_IMPORTS_FILE,
  REQUESTS_FILE,
  TEMP_PREFIX,
  VERSION_FILE,
  archiveBucket,
  isTempName,
  jobFileName,
  jobIdFromFileName,
} from "./layout.js";
import { DirLock, type LockKind, type LockOwner, type ProcessProbe } from "../storage/dir-lock.js";

export interface QuarantinedFile {
  file: string;
  reason: string;
}

/** What `open` found. */
export interface LoadReport {
  jobs: number;
  archivedMaxId: number;
  quarantined: QuarantinedFile[];
  tempFilesRemoved: number;
  staleLock: LockOwner | null;
  /** Job files written again from the requests file: the master had stopped before writing them. */
  restoredFromRequests: number;
}

/** The jobs directory's lock: one master per directory. */
const JOBS_DIR_LOCK: LockKind = {
  holder: "abs-master",
  what: "jobs directory",
  file: LOCK_FILE,
  tempPrefix: TEMP_PREFIX,
  locked: (message, context) => new JobsDirLockedError(message, context),
  io: (message, file, cause) => new JobsDirIoError(message, file, cause),
};

/**
 * Creates `dir` if need be, takes its lock and loads it. On failure the
 * lock is released again.
 */
export async function openJobsDir(
  dir: string,
  fs: FsOps,
  logger: Logger,
  opts: { now: number; probe: ProcessProbe },
): Promise<{ lock: DirLock; loaded: Loaded }> {
  try {
    await fs.mkdir(dir);
  } catch (err) {
    throw new JobsDirIoError(
      `cannot create jobs directory ${dir}: ${describeError(err)}`,
      dir,
      err,
    );
  }
  let staleLock: LockOwner | null = null;
  const lock = await DirLock.acquire(fs, dir, JOBS_DIR_LOCK, opts.probe, (prev) => {
    staleLock = prev;
    logger.warn(`took over the stale lock of abs-master pid ${prev?.pid ?? "?"} in ${dir}`);
  });
  try {
    const loaded = await loadDirectory(dir, fs, logger, opts.now);
    loaded.report.staleLock = staleLock;
    return { lock, loaded };
  } catch (err) {
    await lock.release().catch(() => undefined);
    throw err;
  }
}

/** What a jobs directory held when it was opened. */
export interface Loaded {
  jobs: Map<number, Job>;
  lastId: number;
  drained: boolean;
  scheduleState: ScheduleState;
  slaves: SlaveRecord[];
  disasterImports: ImportedAttempt[];
  requests: RequestRecords;
  requestsFileExists: boolean;
  report: LoadReport;
}

async function loadDirectory(dir: string, fs: FsOps, logger: Logger, now: number): Promise<Loaded> {
  // The reader thread starts now, while the directory is listed (see
  // file-reader.ts); with injected file operations (tests) files are read here.
  const reader = fs === realFsOps && (await looksLarge(dir)) ? new FileReaderThread() : null;
  try {
    return await loadEntries(dir, fs, logger, reader, now);
  } finally {
    reader?.stop();
  }
}

async function loadEntries(
  dir: string,
  fs: FsOps,
  logger: Logger,
  reader: FileReaderThread | null,
  now: number,
): Promise<Loaded> {
  let entries: Awaited<ReturnType<FsOps["readdir"]>>;
  try {
    entries = await fs.readdir(dir);
  } catch (err) {
    throw new JobsDirIoError(`cannot read jobs directory ${dir}: ${describeError(err)}`, dir, err);
  }
  const names = new Set(entries.map((e) => e.name));
  await checkVersion(dir, fs, names);

  const report: LoadReport = {
    jobs: 0,
    archivedMaxId: 0,
    quarantined: [],
    tempFilesRemoved: 0,
    staleLock: null,
    restoredFromRequests: 0,
  };
  const jobFiles: { name: string; id: number }[] = [];
  let changedDir = false;
  const quarantine = async (name: string, reason: string): Promise<void> => {
    await quarantineFile(dir, fs, name, reason);
    report.quarantined.push({ file: name, reason });
    logger.warn(`quarantined ${path.join(dir, name)}: ${reason}`, { file: name });
    changedDir = true;
  };

  for (const entry of entries) {
    if (isTempName(entry.name)) {
      // A write or a lock attempt that never finished. The lock is ours, so no
      // one else is writing here.
      await fs.unlink(path.join(dir, entry.name)).catch(() => undefined);
      report.tempFilesRemoved += 1;
      changedDir = true;
      continue;
    }
    if (entry.isDirectory) {
      if (entry.name !== ARCHIVE_DIR && entry.name !== QUARANTINE_DIR) {
        logger.warn(`ignoring unexpected directory ${path.join(dir, entry.name)}`);
      }
      continue;
    }
    if (KNOWN_FILES.has(entry.name)) continue;
    const id = jobIdFromFileName(entry.name);
    if (id === null || !entry.isFile) {
      await quarantine(entry.name, "not a file of a jobs directory");
      continue;
    }
    jobFiles.push({ name: entry.name, id });
  }

  jobFiles.sort((a, b) => a.id - b.id);
  const parsed: (Job | null)[] = new Array<Job | null>(jobFiles.length).fill(null);
  const bad: { name: string; reason: string }[] = [];
  // dir is already absolute and normalized (see open), so plain concatenation suffices.
  const fileOf = (i: number): string => `${dir}/${jobFiles[i].name}`;
  const parseAt = (i: number, text: string): void => {
    const { name, id } = jobFiles[i];
    try {
      parsed[i] = parseJobFile(text, name, id);
    } catch (err) {
      if (!(err instanceof AbsError)) throw err;
      const reason = err.message.startsWith(`${name}: `)
        ? err.message.slice(name.length + 2)
        : err.message;
      bad.push({ name, reason });
    }
  };
  // With many files the reader thread reads them while this thread parses;
  // with few, they are read here, synchronously: the master serves nothing
  // while it loads, and for small files a read without the thread pool's
  // round trips is several times faster than fs.promises.readFile.
  const read =
    reader !== null && jobFiles.length >= WORKER_READ_MIN_FILES
      ? await reader.read(
          jobFiles.map((_, i) => fileOf(i)),
          (i, text) => {
            if (text instanceof Error) {
              throw new JobsDirIoError(
                `cannot read ${fileOf(i)}: ${text.message}`,
                fileOf(i),
                text,
              );
            }
            parseAt(i, text);
          },
        )
      : 0;
  for (let i = read; i < jobFiles.length; i++) parseAt(i, readTextNow(fs, fileOf(i)));
  for (const b of bad) await quarantine(b.name, b.reason);

  let jobs = new Map<number, Job>();
  for (const job of parsed) if (job !== null) jobs.set(job.id, job);

  report.archivedMaxId = await highestArchivedId(dir, fs);
  const serial = await readSerial(dir, fs, logger, names.has(SERIAL_FILE));
  const highestJobId = jobFiles.length === 0 ? 0 : jobFiles[jobFiles.length - 1].id;
  const seen = Math.max(highestJobId, report.archivedMaxId);
  if (seen > serial) {
    logger.warn(
      `serial ${serial} is below the highest job id ${seen} found in ${dir}; continuing from ${seen}`,
    );
  }
  if (changedDir) await fs.fsyncDir(dir);
  const requests = await loadRequests(dir, fs, logger, names.has(REQUESTS_FILE), jobs, serial, now);
  if (requests.restored.length > 0) {
    // Restored ids may fall between loaded ones: the map stays in id order.
    for (const job of requests.restored) jobs.set(job.id, job);
    jobs = new Map([...jobs].sort((a, b) => a[0] - b[0]));
    report.restoredFromRequests = requests.restored.length;
  }
  report.jobs = jobs.size;
  const scheduleState = names.has(SCHEDULE_STATE_FILE)
    ? readStateFile(
        dir,
        fs,
        logger,
        SCHEDULE_STATE_FILE,
        parseScheduleState,
        {},
        "missed runs are not caught up this time",
      )
    : {};
  const slaves = names.has(SLAVES_FILE)
    ? readStateFile(
        dir,
        fs,
        logger,
        SLAVES_FILE,
        parseSlaveRegistry,
        [],
        "slaves are listed again as they reconnect",
      )
    : [];
  const disasterImports = names.has(DISASTER_IMPORTS_FILE)
    ? readStateFile(
        dir,
        fs,
        logger,
        DISASTER_IMPORTS_FILE,
        parseDisasterImports,
        [],
        "an import of a disaster log already imported may record its unknown jobs again once they are archived",
      )
    : [];
  return {
    jobs,
    lastId: Math.max(serial, seen, requests.highestId),
    drained: names.has(DRAIN_FILE),
    scheduleState,
    slaves,
    disasterImports,
    requests: requests.records,
    requestsFileExists: names.has(REQUESTS_FILE),
    report,
  };
}

/**
 * Reads the requests file (request-records.ts). A job a record carries that
 * the directory lacks, or has in an older version, is written again from
 * it: the master stopped after the record and before the job's file. Then
 * the file is rewritten without job texts, so the next start reads only
 * what came since.
 */
async function loadRequests(
  dir: string,
  fs: FsOps,
  logger: Logger,
  exists: boolean,
  jobs: ReadonlyMap<number, Job>,
  serialOnDisk: number,
  now: number,
): Promise<{ records: RequestRecords; restored: Job[]; highestId: number }> {
  const records = new RequestRecords();
  if (!exists) return { records, restored: [], highestId: 0 };
  const file = path.join(dir, REQUESTS_FILE);
  const parsed = parseRequests(readTextNow(fs, file));
  for (const b of parsed.bad) {
    logger.warn(`${file}:${b.line}: unusable (${b.reason}); a retry of that request is done again`);
  }
  if (parsed.torn !== null && parsed.torn.trim() !== "") {
    logger.warn(`${file}: ends in part of a line, an append cut short (never answered); dropped`);
  }
  const restore = new Map<number, { job: Job; record: RequestRecord }>();
  let carried = 0;
  let highestId = 0;
  for (const { record, jobs: values } of parsed.lines) {
    records.add(record);
    for (const [i, value] of values.entries()) {
      carried += 1;
      let job: Job;
      try {
        job = parseJobValue(value, `${file}: request ${record.id}: jobs[${i}]`);
      } catch (err) {
        logger.warn(describeError(err));
        continue;
      }
      highestId = Math.max(highestId, job.id);
      const current = restore.get(job.id)?.job ?? jobs.get(job.id);
      if (current !== undefined && current.serial >= job.serial) continue;
      if (current === undefined && (await isArchived(dir, fs, job.id))) continue;
      restore.set(job.id, { job, record });
    }
  }
  const restored = [...restore.values()];
  if (restored.length > 0) {
    // The serial first, as always, should a damaged one be below these ids.
    if (highestId > serialOnDisk) await commitFile(fs, dir, SERIAL_FILE, `${highestId}\n`);
    const outcome = await commitFiles(
      fs,
      dir,
      restored.map(({ job }) => ({ name: jobFileName(job.id), data: serializeJob(job) })),
    );
    const failed = outcome.writes.find((w) => w !== null);
    if (failed !== undefined && failed !== null) throw failed;
    for (const { job, record } of restored) {
      logger.warn(
        `job ${job.id}: written again from the record of admin request ${record.id} (${record.method}): the master stopped before its file was`,
        { job: job.id },
      );
    }
  }
  if (carried > 0 || parsed.bad.length > 0 || parsed.torn !== null) {
    records.expire(now);
    await commitFile(fs, dir, REQUESTS_FILE, records.toText());
  }
  return { records, restored: restored.map((r) => r.job), highestId };
}

async function isArchived(dir: string, fs: FsOps, id: number): Promise<boolean> {
  const file = path.join(dir, archiveBucket(id), jobFileName(id));
  try {
    await fs.readFile(file);
    return true;
  } catch (err) {
    if (hasCode(err, "ENOENT")) return false;
    throw new JobsDirIoError(`cannot read ${file}: ${describeError(err)}`, file, err);
  }
}

async function checkVersion(dir: string, fs: FsOps, names: Set<string>): Promise<void> {
  const file = path.join(dir, VERSION_FILE);
  if (!names.has(VERSION_FILE)) {
    const used = [...names].some((n) => !isTempName(n) && n !== "lock");
    if (used) {
      throw new JobsDirVersionError(
        `${dir} has no version file: it is not an ABS jobs directory, or it is damaged; ` +
          `if it is yours, write "${JOBSDIR_VERSION}" into ${file}`,
        file,
      );
    }
    await commitFile(fs, dir, VERSION_FILE, `${JOBSDIR_VERSION}\n`);
    return;
  }
  const text = (await readText(fs, file)).trim();
  if (!/^[0-9]+$/.test(text)) {
    throw new JobsDirVersionError(`${file}: "${text.slice(0, 40)}" is not a format version`, file);
  }
  const version = Number(text);
  if (version > JOBSDIR_VERSION) {
    throw new JobsDirVersionError(
      `${file}: jobs directory format ${version} is newer than this abs-master reads (${JOBSDIR_VERSION}); ` +
        `run the abs-master that wrote it, or a newer one`,
      file,
    );
  }
  if (version < JOBSDIR_VERSION) {
    throw new JobsDirVersionError(
      `${file}: jobs directory format ${version} is older than this abs-master reads (${JOBSDIR_VERSION})`,
      file,
    );
  }
}

async function readSerial(
  dir: string,
  fs: FsOps,
  logger: Logger,
  exists: boolean,
): Promise<number> {
  if (!exists) return 0;
  const file = path.join(dir, SERIAL_FILE);
  const text = (await readText(fs, file)).trim();
  if (/^[0-9]{1,15}$/.test(text)) return Number(text);
  // The ids in use are still known from the job files and the archive, so a
  // damaged serial is recovered from them rather than stopping the master.
  logger.warn(`${file}: "${text.slice(0, 40)}" is not a job id; recomputing it from the job files`);
  return 0;
}

async function highestArchivedId(dir: string, fs: FsOps): Promise<number> {
  const archive = path.join(dir, ARCHIVE_DIR);
  let buckets: Awaited<ReturnType<FsOps["readdir"]>>;
  try {
    buckets = await fs.readdir(archive);
  } catch (err) {
    if (hasCode(err, "ENOENT")) return 0;
    throw new JobsDirIoError(`cannot read ${archive}: ${describeError(err)}`, archive, err);
  }
  const numbers = buckets
    .filter((b) => b.isDirectory && /^[0-9]+$/.test(b.name))
    .map((b) => Number(b.name))
    .sort((a, b) => b - a);
  for (const n of numbers) {
    const files = await fs.readdir(path.join(archive, String(n)));
    const ids = files
      .map((f) => jobIdFromFileName(f.name))
      .filter((id): id is number => id !== null);
    if (ids.length > 0) return ids.reduce((a, b) => Math.max(a, b), 0);
  }
  return 0;
}

async function readText(fs: FsOps, file: string): Promise<string> {
  try {
    return await fs.readFile(file);
  } catch (err) {
    throw new JobsDirIoError(`cannot read ${file}: ${describeError(err)}`, file, err);
  }
}

/**
 * A damaged state file costs little (one missed-run decision per
 * definition, or the list of slaves until they reconnect), so it is logged
 * and replaced by an empty one rather than stopping the master.
 */
function readStateFile<T>(
  dir: string,
  fs: FsOps,
  logger: Logger,
  name: string,
  parse: (text: string) => T,
  empty: T,
  consequence: string,
): T {
  const file = path.join(dir, name);
  const text = readTextNow(fs, file);
  try {
    return parse(text);
  } catch (err) {
    const why = err instanceof ShapeError ? `${err.field}: ${err.why}` : describeError(err);
    logger.warn(`${file}: unusable (${why}); ${consequence}`);
    return empty;
  }
}

/** Below this many job files a worker thread costs more to start than it saves. */
const WORKER_READ_MIN_FILES = 2000;

function readTextNow(fs: FsOps, file: string): string {
  try {
    return fs.readFileNow(file);
  } catch (err) {
    throw new JobsDirIoError(`cannot read ${file}: ${describeError(err)}`, file, err);
  }
}

async function quarantineFile(dir: string, fs: FsOps, name: string, reason: string): Promise<void> {
  const qdir = path.join(dir, QUARANTINE_DIR);
  const stamp = new Date().toISOString().replace(/[:.]/g, "-");
  const target = `${name}.${stamp}`;
  try {
    await fs.mkdir(qdir);
    await fs.rename(path.join(dir, name), path.join(qdir, target));
    await commitFile(fs, qdir, `${target}.reason`, `${reason}\n`);
  } catch (err) {
    throw new JobsDirIoError(
      `cannot quarantine ${path.join(dir, name)}: ${describeError(err)}`,
      name,
      err,
    );
  }
}
