// abs watch over an in-memory context: the terminal display (progress
// rewritten in place, cleared before log lines), without a process.

process.env.TZ = "UTC";

import t from "tap";
import { humanView, watch } from "../../../src/cli/commands/watch.js";
import type { AdminResults, CliContext, Output } from "../../../src/cli/context.js";
import type { JsonObject } from "../../../src/json-shape.js";
import type { WatchResult } from "../../../src/protocol/admin-api.js";
import { jobDetail } from "../../helpers/admin-views.js";

const NOW = Date.UTC(2026, 10, 23, 12, 0, 0);

function collect(isTTY: boolean, columns?: number): Output & { text: string } {
  const out = {
    text: "",
    isTTY,
    columns,
    write(s: string) {
      out.text += s;
    },
  };
  return out;
}

function context(out: Output, answers: WatchResult[]): CliContext & { args: JsonObject[] } {
  const args: JsonObject[] = [];
  return {
    args,
    out,
    now: () => NOW,
    call<M extends keyof AdminResults>(method: M, a: JsonObject): Promise<AdminResults[M]> {
      if (method !== "watch") throw new Error(`unexpected ${method}`);
      args.push(a);
      const answer = answers.shift();
      if (answer === undefined) throw new Error("no more answers");
      return Promise.resolve(answer as AdminResults[M]);
    },
  };
}

t.test(
  "on a terminal: progress on one line, rewritten; cleared for log lines and at the end",
  async (t) => {
    const first = jobDetail(NOW, { serial: 5, log: [] });
    const second = jobDetail(NOW, {
      serial: 6,
      progress: { files: 2000, bytes: 2048, path: "/home/bob/a-very-long-path/that/is/cut" },
      log: [],
    });
    const third = jobDetail(NOW, {
      serial: 7,
      progress: { files: 2100, bytes: 4096, path: null },
      log: [{ serial: 1, time: NOW, level: "warning", message: "file changed as we read it" }],
    });
    const done = jobDetail(NOW, {
      serial: 8,
      state: "succeeded",
      progress: { files: 2100, bytes: 4096, path: null },
      result: "2100 files, 4.0 KiB",
      log: [...third.log, { serial: 2, time: NOW, level: "info", message: "succeeded" }],
    });
    const out = collect(true, 40);
    const ctx = context(out, [
      { changed: true, job: first },
      { changed: true, job: second },
      { changed: true, job: third },
      { changed: true, job: done },
    ]);
    t.equal(await watch(ctx, 12, {}), 0);
    t.equal(
      out.text,
      "job 12: home on green-acres\n" +
        "\r\x1b[Kprogress: 1204 files, 1.2 GiB, /home/al" +
        "\r\x1b[Kprogress: 2000 files, 2.0 KiB, /home/bo" +
        "\r\x1b[K2026-11-23T12:00:00+00:00  warning  file changed as we read it\n" +
        "\r\x1b[Kprogress: 2100 files, 4.0 KiB" +
        "\r\x1b[K2026-11-23T12:00:00+00:00  info     succeeded\n" +
        "job 12 succeeded: 2100 files, 4.0 KiB\n",
    );
    t.same(
      ctx.args.map((a) => a.serial),
      [0, 5, 6, 7],
    );
  },
);

t.test("not a terminal: a progress line per change, none repeated", (t) => {
  const out = collect(false);
  const view = humanView(out);
  const job = jobDetail(NOW, { log: [] });
  view.update(job);
  view.update(job);
  view.update(jobDetail(NOW, { log: [], progress: { files: 1, bytes: 0, path: "/x\n/y" } }));
  t.equal(
    out.text,
    "job 12: home on green-acres\n" +
      "progress: 1204 files, 1.2 GiB, /home/alice/Mail\n" +
      "progress: 1 files, 0 B, /x\\n/y\n",
  );
  t.notOk(out.text.includes("\x1b"), "no terminal control on a pipe");
  t.end();
});

t.test("a job that is already finished: one call, its outcome", async (t) => {
  const cases: [WatchResult["job"]["state"], number][] = [
    ["succeeded", 0],
    ["failed", 10],
    ["canceled", 11],
  ];
  for (const [state, status] of cases) {
    const out = collect(false);
    const ctx = context(out, [{ changed: true, job: jobDetail(NOW, { state, result: "r" }) }]);
    t.equal(await watch(ctx, 12, {}), status, state);
    t.match(out.text, new RegExp(`\\njob 12 ${state}: r\\n$`));
    t.equal(ctx.args.length, 1);
  }
});
