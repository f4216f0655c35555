// PublishOrder alone, with promises the test settles by hand: groups publish
// in the order they were queued, whichever is ready first.

import t from "tap";
import { PublishOrder } from "../../src/jobsdir/durable-files.js";

interface Deferred<T> {
  promise: Promise<T>;
  resolve: (value: T) => void;
  reject: (err: Error) => void;
}

function deferred<T>(): Deferred<T> {
  let resolve: (value: T) => void = () => undefined;
  let reject: (err: Error) => void = () => undefined;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** Lets every promise callback already due run (no time passes). */
const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

function recorder(events: string[]): (p: string) => Promise<string> {
  return async (p) => {
    events.push(`start ${p}`);
    await settle();
    events.push(`end ${p}`);
    return p;
  };
}

t.test("a group ready first waits for the groups queued before it", async (t) => {
  const order = new PublishOrder();
  const events: string[] = [];
  const publish = recorder(events);
  const first = deferred<string>();
  const second = deferred<string>();
  const a = order.queue(first.promise, publish);
  const b = order.queue(second.promise, publish);
  const c = order.queue(Promise.resolve("c"), publish);
  second.resolve("b");
  await settle();
  t.same(events, [], "nothing publishes while the first group is not ready");
  first.resolve("a");
  t.same(await Promise.all([a, b, c]), ["a", "b", "c"]);
  t.same(events, ["start a", "end a", "start b", "end b", "start c", "end c"]);
});

t.test("a group that fails reaches its caller and holds up no one", async (t) => {
  const order = new PublishOrder();
  const events: string[] = [];
  const publish = recorder(events);
  const a = order.queue(Promise.reject(new Error("prepare failed")), publish);
  const b = order.queue(Promise.resolve("b"), () => Promise.reject(new Error("publish failed")));
  const c = order.queue(Promise.resolve("c"), publish);
  await t.rejects(a, { message: "prepare failed" });
  await t.rejects(b, { message: "publish failed" });
  t.equal(await c, "c");
  t.same(events, ["start c", "end c"]);
});

t.test(
  "a group whose preparation fails while it waits its turn fails its caller only",
  async (t) => {
    const order = new PublishOrder();
    const events: string[] = [];
    const publish = recorder(events);
    const first = deferred<string>();
    const second = deferred<string>();
    const a = order.queue(first.promise, publish);
    const b = order.queue(second.promise, publish);
    const c = order.queue(Promise.resolve("c"), publish);
    second.reject(new Error("prepare failed"));
    await settle();
    first.resolve("a");
    t.equal(await a, "a");
    await t.rejects(b, { message: "prepare failed" });
    t.equal(await c, "c");
    t.same(events, ["start a", "end a", "start c", "end c"]);
  },
);
