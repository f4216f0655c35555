// abs show slaves: the slaves that have registered, connected or not.

import type { SlaveView } from "../../protocol/admin-api.js";
import type { CliContext } from "../context.js";
import { formatRelative } from "../format.js";
import { renderTable } from "../table.js";

const COLUMNS = [
  { title: "NAME" },
  { title: "CONNECTED" },
  { title: "ACTIVE/MAX", align: "right" },
  { title: "ADDRESS" },
  { title: "IDENTITY" },
  { title: "LAST SEEN" },
] as const;

export function formatSlavesTable(slaves: readonly SlaveView[], now: number): string {
  return renderTable(
    COLUMNS,
    slaves.map((s) => [
      s.name,
      s.connected ? "yes" : "no",
      `${s.active}/${s.maxJobs}`,
      s.address,
      s.identity,
      // A connected slave is heard from continuously (heartbeats).
      s.connected ? "now" : formatRelative(s.lastSeen, now),
    ]),
  );
}

export async function showSlaves(ctx: CliContext, o: { json?: boolean }): Promise<void> {
  const result = await ctx.call("show-slaves", {});
  if (o.json === true) {
    ctx.out.write(JSON.stringify(result, null, 2) + "\n");
    return;
  }
  if (result.slaves.length === 0) {
    ctx.out.write("no slaves have registered\n");
    return;
  }
  ctx.out.write(formatSlavesTable(result.slaves, ctx.now()));
}
