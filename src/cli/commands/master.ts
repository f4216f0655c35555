// abs status, abs drain on|off and abs reload: the master itself.

import type { StatusResult } from "../../protocol/admin-api.js";
import type { CliContext } from "../context.js";
import { formatWhen, plural } from "../format.js";
import { renderFields } from "../table.js";

export function formatStatus(s: StatusResult, now: number): string {
  return renderFields([
    ["master", `${s.master} (pid ${s.pid})`],
    [
      "mode",
      s.mode === "disaster" ? "disaster (abs-master --disaster: no jobs directory)" : "real",
    ],
    ["realm", s.realm],
    [
      "auth",
      s.servicePrincipal === null ? s.auth : `${s.auth}, service principal ${s.servicePrincipal}`,
    ],
    ["started", formatWhen(s.startedAt, now)],
    ["listen", s.listen],
    ["jobs dir", s.jobsDir ?? "none"],
    ["jobs", `${s.jobs} unarchived`],
    ["drained", s.drained ? "yes: new jobs are refused until abs drain off" : "no"],
    ["slaves", `${plural(s.slavesConnected, "slave")} connected`],
  ]);
}

export async function status(ctx: CliContext, o: { json?: boolean }): Promise<void> {
  const result = await ctx.call("status", {});
  if (o.json === true) {
    ctx.out.write(JSON.stringify(result, null, 2) + "\n");
    return;
  }
  ctx.out.write(formatStatus(result, ctx.now()));
}

export async function drain(ctx: CliContext, on: boolean): Promise<void> {
  const result = await ctx.call("drain", { on });
  ctx.out.write(
    result.drained
      ? "drained: new jobs are refused until abs drain off\n"
      : "not drained: new jobs are accepted\n",
  );
}

/** A bad config comes back as CONFIG listing every issue; main prints it and exits 6. */
export async function reload(ctx: CliContext): Promise<void> {
  const result = await ctx.call("reload", {});
  ctx.out.write(result.summary.endsWith("\n") ? result.summary : `${result.summary}\n`);
}
