#!/usr/bin/env node
// The admin command. Thin: parses argv with commander, calls src/, prints
// the result. Errors print their message (no stack trace) and exit non-zero.
//
// Exit statuses: 0 success, 1 the command failed, 2 bad usage (an unknown
// command or option, a missing or extra argument).

import { Command, CommanderError } from "commander";
import { readCertificateFingerprint } from "../src/auth/tls.js";
import { generateRealmKey } from "../src/auth/realm-key.js";
import { describeError } from "../src/errors.js";

const EXIT_FAILURE = 1;
const EXIT_USAGE = 2;

function program(): Command {
  const abs = new Command("abs")
    .description("administer ABS, the backup job coordinator")
    .exitOverride()
    .showHelpAfterError(false);

  abs
    .command("keygen")
    .description("write a new realm key to FILE (mode 0600); an existing FILE is never overwritten")
    .argument("<file>", "the realm key file to create")
    .action(async (file: string) => {
      await generateRealmKey(file);
      process.stdout.write(
        `wrote a new realm key to ${file} (mode 0600); copy it to the master and every slave over a secure channel\n`,
      );
    });

  abs
    .command("fingerprint")
    .description("print the SHA-256 fingerprint of the PEM certificate in CERTFILE")
    .argument("<certfile>", "a PEM certificate, e.g. the master's tls-cert.pem")
    .action(async (file: string) => {
      process.stdout.write(`${await readCertificateFingerprint(file)}\n`);
    });

  return abs;
}

async function main(): Promise<void> {
  await program().parseAsync(process.argv);
}

main().catch((err: unknown) => {
  if (err instanceof CommanderError) {
    // commander has printed its message (or the help) already.
    const ok = err.code === "commander.helpDisplayed" || err.code === "commander.version";
    process.exit(ok ? 0 : EXIT_USAGE);
  }
  process.stderr.write(`abs: ${describeError(err)}\n`);
  process.exit(EXIT_FAILURE);
});
