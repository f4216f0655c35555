// Child of the jobsdir benchmark: loads a jobs directory and prints its peak
// RSS, so that nothing else the benchmark did counts against it.

import { JobStore } from "../src/jobsdir/job-store.js";

const dir = process.argv[2];
if (dir === undefined) throw new Error("usage: jobsdir-rss DIR");
const store = await JobStore.open({ dir });
const jobs = store.size;
await store.close();
process.stdout.write(JSON.stringify({ jobs, maxRssKiB: process.resourceUsage().maxRSS }) + "\n");
