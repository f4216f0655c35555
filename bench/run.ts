// npm run bench -- NAME [NAME...]: runs benchmark scenarios, each printing
// JSON lines. With no name, lists them.

import { runAuthBench } from "./auth.js";
import { runBackupBench } from "./backup.js";
import { runDispatchBench } from "./dispatch.js";
import { runFailoverBench } from "./failover.js";
import { runJobsDirBench } from "./jobsdir.js";
import { runStartupBench } from "./startup.js";

const SCENARIOS: Record<string, () => Promise<void>> = {
  jobsdir: runJobsDirBench,
  auth: runAuthBench,
  dispatch: runDispatchBench,
  startup: runStartupBench,
  backup: runBackupBench,
  failover: runFailoverBench,
};

async function main(): Promise<void> {
  const names = process.argv.slice(2);
  if (names.length === 0) {
    process.stderr.write(
      `usage: npm run bench -- NAME\nscenarios: ${Object.keys(SCENARIOS).join(", ")}\n`,
    );
    process.exitCode = 2;
    return;
  }
  for (const name of names) {
    const scenario = SCENARIOS[name];
    if (scenario === undefined) {
      process.stderr.write(
        `unknown benchmark "${name}"; scenarios: ${Object.keys(SCENARIOS).join(", ")}\n`,
      );
      process.exitCode = 2;
      return;
    }
    await scenario();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exitCode = 1;
});
