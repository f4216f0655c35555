// How many libuv threads abs-master does its file I/O on. bin/abs-master.cts
// sets them, and says why; the dispatch benchmark gives its in-process floor
// as many. CommonJS, so that the executable can load it before any ES module.

/** Pool threads of abs-master, unless its environment sets UV_THREADPOOL_SIZE. */
export const MASTER_IO_THREADS = 16;
