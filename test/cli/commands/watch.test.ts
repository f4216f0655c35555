// abs watch over an in-memory context: the terminal display (progress
// rewritten in place, cleared before log lines), without a process. The
// progress line itself is tested in test/cli/progress-bar.test.ts.

process.env.TZ = "UTC";

import t from "tap";
import { humanView, watch } from "../../../src/cli/commands/watch.js";
import type { CliContext, Output } from "../../../src/cli/context.js";
import type { JsonObject } from "../../../src/json-shape.js";
import type { AdminMethodName, WatchResult } from "../../../src/protocol/admin-api.js";
import type { ResultOf } from "../../../src/protocol/admin-contract.js";
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
    call<M extends AdminMethodName>(method: M, a: JsonObject): Promise<ResultOf<M>> {
      if (method !== "watch") throw new Error(`unexpected ${method}`);
      args.push(a);
      const answer = answers.shift();
      if (answer === undefined) throw new Error("no more answers");
      return Promise.resolve(answer as ResultOf<M>);
    },
  };
}

t.test(
  "on a terminal: progress on one line, rewritten; cleared for log lines and at the end",
  async (t) => {
    // Started 12m20s before NOW (740 s): 1.2 GiB is 1.7 MiB/s on average.
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
    const out = collect(true, 50);
    const ctx = context(out, [
      { changed: true, job: first },
      { changed: true, job: second, expected: null },
      { changed: true, job: third, expected: { files: 4000, bytes: 10240 } },
      { changed: true, job: done, expected: null },
    ]);
    t.equal(await watch(ctx, 12, {}), 0);
    t.equal(
      out.text,
      "job 12: home on green-acres\n" +
        // No estimate (a master without one, then null): counts, rate, path.
        "\r\x1b[K1.2 GiB  1,204 files  1.7 MiB/s  /home/alice/Mail" +
        "\r\x1b[K2.0 KiB  2,000 files  2 B/s  ...-path/that/is/cut" +
        "\r\x1b[K2026-11-23T12:00:00+00:00  warning  file changed as we read it\n" +
        // An estimate: a bar, the line cut to 49 columns.
        "\r\x1b[K[########------------]   40%  4.0 KiB of 10.0 KiB" +
        "\r\x1b[K2026-11-23T12:00:00+00:00  info     succeeded\n" +
        "job 12 succeeded: 2100 files, 4.0 KiB\n",
    );
    t.same(
      ctx.args.map((a) => a.serial),
      [0, 5, 6, 7],
    );
  },
);

t.test("on a terminal that gives no width (0 or none): 80 columns", (t) => {
  for (const columns of [0, undefined]) {
    const out = collect(true, columns);
    const view = humanView(out, () => NOW);
    const path = "/home/alice/" + "x".repeat(200);
    view.update(jobDetail(NOW, { log: [], progress: { files: 1, bytes: 1, path } }), null);
    const line = out.text.split("\r\x1b[K")[1] ?? "";
    t.equal(line.length, 79, `columns ${String(columns)}`);
    t.match(line, /\.\.\.x+$/);
  }
  t.end();
});

t.test("not a terminal: a progress line per change, none repeated, estimate or not", (t) => {
  const out = collect(false);
  const view = humanView(out, () => NOW);
  const job = jobDetail(NOW, { log: [] });
  const expected = { files: 2000, bytes: 2_000_000_000 };
  view.update(job, expected);
  view.update(job, expected);
  view.update(
    jobDetail(NOW, { log: [], progress: { files: 1, bytes: 0, path: "/x\n/y" } }),
    expected,
  );
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
