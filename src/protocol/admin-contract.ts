// The admin contract, one row per method: how its arguments are checked,
// what it answers, and whether it changes something. The master's handlers
// (src/master/admin-methods.ts), the fake master's and `abs`
// (src/cli/context.ts) all take their types from here, so a handler that
// answers the wrong shape, or a method left out, does not compile.
// admin-api.ts has the argument and result types themselves.

import type { JsonCompatible, JsonObject, JsonValue } from "../json-shape.js";
import {
  ADMIN_METHODS,
  type AdminMethodName,
  type ArchiveArgs,
  type ArchiveResult,
  type AutoarchiveArgs,
  type AutoarchiveResult,
  type CancelArgs,
  type CancelResult,
  type DrainArgs,
  type DrainResult,
  type ImportDisasterLogArgs,
  type ImportDisasterLogResult,
  type NoArgs,
  type ReloadResult,
  type RunArgs,
  type RunResult,
  type ShowJobArgs,
  type ShowJobResult,
  type ShowJobsArgs,
  type ShowJobsResult,
  type ShowScheduleArgs,
  type ShowScheduleResult,
  type ShowSlavesResult,
  type StatusResult,
  type WatchArgs,
  type WatchResult,
  parseArchiveArgs,
  parseAutoarchiveArgs,
  parseDrainArgs,
  parseIdArgs,
  parseImportDisasterLogArgs,
  parseNoArgs,
  parseRunArgs,
  parseShowJobsArgs,
  parseShowScheduleArgs,
  parseWatchArgs,
} from "./admin-api.js";

/** One method of the contract: `Args` as parsed, `Result` as answered. */
export interface AdminMethodSpec<Args, Result> {
  /** Checks the wire arguments; throws ShapeError naming the field. */
  readonly parse: (args: JsonObject) => Args;
  /**
   * It creates or changes something: each request carries a request id,
   * and a repeat of it changes nothing (src/master/admin-requests.ts).
   */
  readonly changes: boolean;
  /** A result as sent: the same value, as JSON. */
  readonly toWire: (result: Result) => JsonValue;
  /**
   * A result as received, trusted as typed and not checked: the master is
   * the peer the admin socket's mode already trusts (src/cli/context.ts).
   */
  readonly fromWire: (result: JsonValue) => Result;
}

/**
 * No parameter when `T` is JSON all through; else one that no argument
 * fits, so that the row of a method whose result holds what JSON cannot
 * carry (undefined, a Date, a function) does not compile.
 */
type MustBeJson<T> = [T] extends [JsonCompatible<T>] ? [] : [resultIsNotJson: never];

function spec<Args, Result>(
  parse: (args: JsonObject) => Args,
  changes: boolean,
): AdminMethodSpec<Args, Result> {
  return {
    parse,
    changes,
    // The only casts between results and JSON. Each result is JSON all
    // through (MustBeJson, on every row below); TypeScript cannot see an
    // interface as a JsonObject, since interfaces get no index signature.
    toWire: (result) => result as JsonValue,
    fromWire: (result) => result as Result,
  };
}

/** A method that only reads. */
function reads<Args, Result>(
  parse: (args: JsonObject) => Args,
  ..._json: MustBeJson<Result>
): AdminMethodSpec<Args, Result> {
  return spec(parse, false);
}

/** A method that creates or changes something (AdminMethodSpec.changes). */
function changes<Args, Result>(
  parse: (args: JsonObject) => Args,
  ..._json: MustBeJson<Result>
): AdminMethodSpec<Args, Result> {
  return spec(parse, true);
}

const CONTRACT = {
  status: reads<NoArgs, StatusResult>(parseNoArgs),
  "show-jobs": reads<ShowJobsArgs, ShowJobsResult>(parseShowJobsArgs),
  "show-job": reads<ShowJobArgs, ShowJobResult>(parseIdArgs),
  "show-slaves": reads<NoArgs, ShowSlavesResult>(parseNoArgs),
  "show-schedule": reads<ShowScheduleArgs, ShowScheduleResult>(parseShowScheduleArgs),
  run: changes<RunArgs, RunResult>(parseRunArgs),
  cancel: changes<CancelArgs, CancelResult>(parseIdArgs),
  watch: reads<WatchArgs, WatchResult>(parseWatchArgs),
  archive: changes<ArchiveArgs, ArchiveResult>(parseArchiveArgs),
  autoarchive: changes<AutoarchiveArgs, AutoarchiveResult>(parseAutoarchiveArgs),
  drain: changes<DrainArgs, DrainResult>(parseDrainArgs),
  reload: changes<NoArgs, ReloadResult>(parseNoArgs),
  "import-disaster-log": changes<ImportDisasterLogArgs, ImportDisasterLogResult>(
    parseImportDisasterLogArgs,
  ),
} satisfies { [M in AdminMethodName]: unknown };

/** Method `M`'s arguments, as its parser answers them. */
export type ArgsOf<M extends AdminMethodName> = ReturnType<(typeof CONTRACT)[M]["parse"]>;
/** What method `M` answers. */
export type ResultOf<M extends AdminMethodName> = ReturnType<(typeof CONTRACT)[M]["fromWire"]>;

/** Every admin method, by name. */
export const ADMIN_CONTRACT: {
  readonly [M in AdminMethodName]: AdminMethodSpec<ArgsOf<M>, ResultOf<M>>;
} = CONTRACT;

/** The methods that create or change something (AdminMethodSpec.changes). */
export const CHANGING_METHODS: ReadonlySet<AdminMethodName> = new Set(
  ADMIN_METHODS.filter((m) => ADMIN_CONTRACT[m].changes),
);
