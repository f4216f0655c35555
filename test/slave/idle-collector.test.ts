// When the idle slave collects garbage: the first time, then once the heap
// has doubled since the last collection; never without --expose-gc's gc.

import t from "tap";
import { idleCollector } from "../../src/slave/idle-collector.js";

const MB = 1 << 20;

/** A heap the test sets, and a gc that counts and leaves `heap.live` in use. */
function fakeHeap(live: number) {
  const heap = { used: live, live, collections: 0 };
  const gc = () => {
    heap.collections++;
    heap.used = heap.live;
  };
  return { heap, gc, heapUsed: () => heap.used };
}

t.test("collects the first time, then only once the garbage is as big as what lived", (t) => {
  const { heap, gc, heapUsed } = fakeHeap(11 * MB);
  const idle = idleCollector({ gc, heapUsed });
  idle();
  t.equal(heap.collections, 1, "nothing known yet: collected");
  heap.used += 7 * MB; // an incremental's garbage
  idle();
  t.equal(heap.collections, 1, "7 MB of garbage over 11 MB live: left");
  heap.used += 7 * MB;
  idle();
  t.equal(heap.collections, 2, "14 MB over 11 MB: collected");
  heap.used += 11 * MB - 1;
  idle();
  t.equal(heap.collections, 2, "a byte short of the live size: left");
  heap.used += 1;
  idle();
  t.equal(heap.collections, 3, "exactly the live size: collected");
  t.end();
});

t.test("what lived is measured after each collection", (t) => {
  const { heap, gc, heapUsed } = fakeHeap(10 * MB);
  const idle = idleCollector({ gc, heapUsed });
  idle();
  // A job that left more alive (a bigger manifest kept): 30 MB live after the next collection.
  heap.live = 30 * MB;
  heap.used = 40 * MB;
  idle();
  t.equal(heap.collections, 2, "30 MB of garbage over 10 MB live: collected");
  heap.used = 50 * MB;
  idle();
  t.equal(heap.collections, 2, "20 MB of garbage over 30 MB live: left");
  heap.used = 60 * MB;
  idle();
  t.equal(heap.collections, 3, "30 MB over 30 MB: collected");
  t.end();
});

t.test("without --expose-gc there is nothing to call, and nothing is measured", (t) => {
  let measured = 0;
  const idle = idleCollector({
    gc: undefined,
    heapUsed: () => {
      measured++;
      return 100 * MB;
    },
  });
  idle();
  idle();
  t.equal(measured, 0);
  t.end();
});
