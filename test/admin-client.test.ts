// abs's retries of a request whose answer was lost (adminCallRetrying),
// against a scripted attempt function: which failures are retried, that
// every attempt carries the first one's request id, and when it gives up.

import t from "tap";
import { AnswerLostError, adminCallRetrying, type AdminCallOptions } from "../src/admin-client.js";
import { AbsError } from "../src/errors.js";
import type { JsonObject, JsonValue } from "../src/json-shape.js";

type Outcome = Error | JsonValue;

/** An attempt function answering `outcomes` in turn, recording the request ids it was given. */
function scripted(outcomes: Outcome[]) {
  const ids: (string | undefined)[] = [];
  const call = (_s: string, _m: string, _a: JsonObject, opts: AdminCallOptions = {}) => {
    ids.push(opts.requestId);
    const next = outcomes.shift();
    if (next === undefined) throw new Error("more attempts than scripted");
    return next instanceof Error ? Promise.reject(next) : Promise.resolve(next);
  };
  return { call, ids };
}

const lost = () => new AnswerLostError("/run/abs/admin.sock");
const down = () =>
  new AbsError(
    "UNREACHABLE",
    "cannot reach the master on /run/abs/admin.sock: is abs-master running?",
  );

t.test("a lost answer is retried with the same request id until the master answers", async (t) => {
  const { call, ids } = scripted([lost(), down(), down(), { jobs: [7] }]);
  const said: string[] = [];
  const result = await adminCallRetrying(
    "/run/abs/admin.sock",
    "run",
    { definition: "home" },
    { waitMs: 5000, onRetry: (s) => said.push(s), firstDelayMs: 1 },
    {},
    call,
  );
  t.same(result, { jobs: [7] });
  t.equal(ids.length, 4);
  t.match(ids[0], /^[0-9a-f-]{36}$/, "a request id was made");
  t.same(new Set(ids).size, 1, "the same id in every attempt");
  t.equal(said.length, 1, "said once, when retrying starts");
  t.match(
    said[0],
    /^abs: the master on \/run\/abs\/admin.sock closed the connection without an answer; retrying run with the same request id [0-9a-f-]{36} for up to 5 s\n$/,
  );
});

t.test(
  "what is not retried: a first attempt that cannot connect, a refusal, --wait 0",
  async (t) => {
    const retry = { waitMs: 5000, onRetry: () => undefined, firstDelayMs: 1 };
    const first = scripted([down()]);
    await t.rejects(adminCallRetrying("s", "run", {}, retry, {}, first.call), {
      code: "UNREACHABLE",
    });
    t.equal(first.ids.length, 1, "nothing was sent: the master is plainly not there");
    const refused = scripted([lost(), new AbsError("DRAINED", "the master is drained")]);
    await t.rejects(adminCallRetrying("s", "run", {}, retry, {}, refused.call), {
      code: "DRAINED",
    });
    t.equal(refused.ids.length, 2, "the master's answer to the retry is the answer");
    const never = scripted([lost()]);
    await t.rejects(adminCallRetrying("s", "run", {}, { ...retry, waitMs: 0 }, {}, never.call), {
      message: /closed the connection without an answer$/,
    });
    const read = scripted([lost(), { jobs: [] }]);
    await adminCallRetrying("s", "show-jobs", {}, retry, {}, read.call);
    t.same(
      read.ids,
      [undefined, undefined],
      "a read carries no request id; it is retried all the same",
    );
    const given = scripted([lost(), null]);
    await adminCallRetrying(
      "s",
      "drain",
      { on: true },
      retry,
      { requestId: "mine-0001" },
      given.call,
    );
    t.same(given.ids, ["mine-0001", "mine-0001"], "an id given is the one used");
  },
);

t.test("it gives up once --wait has passed, saying so", async (t) => {
  const outcomes: Outcome[] = [lost(), ...Array.from({ length: 50 }, down)];
  const { call, ids } = scripted(outcomes);
  const started = Date.now();
  await t.rejects(
    adminCallRetrying(
      "s",
      "cancel",
      { id: 3 },
      { waitMs: 300, onRetry: () => undefined, firstDelayMs: 10 },
      {},
      call,
    ),
    {
      code: "UNREACHABLE",
      message: /is abs-master running\?; gave up retrying cancel after 0 s \(abs --wait\)$/,
    },
  );
  t.ok(Date.now() - started < 2000, "within the wait, give or take a pause");
  t.ok(ids.length >= 3 && ids.length < 20, `${ids.length} attempts, the pauses doubling`);
});
