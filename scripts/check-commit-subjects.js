// Fails (exit 1) when a commit since BASE has a subject longer than 72
// characters: the subject says what changed, in a line `git log --oneline`
// shows whole; the why and the figures go in the body (CONTRIBUTING.md).
// Run by `npm run lint`.
//
// BASE is the last commit before the rule: older subjects are longer and
// cannot be rewritten on a shared branch. Where BASE is not in the clone
// (a shallow clone, an export without history) the check is skipped with a
// note rather than failed: there is nothing it could check.

import { execFileSync } from "node:child_process";
import path from "node:path";

const BASE = "71ac4f85cb31d70f00fc9a01c25cc9e4071e634e";
const MAX_SUBJECT = 72;

const root = path.resolve(import.meta.dirname, "..");

function git(...args) {
  return execFileSync("git", args, {
    cwd: root,
    encoding: "utf8",
    stdio: ["ignore", "pipe", "ignore"],
  });
}

function baseIsHere() {
  try {
    git("rev-parse", "--is-inside-work-tree");
    git("cat-file", "-e", `${BASE}^{commit}`);
    return true;
  } catch {
    return false;
  }
}

if (!baseIsHere()) {
  console.log(
    `commit subjects: not checked: the base commit ${BASE.slice(0, 12)} is not in this clone (shallow, or no git history)`,
  );
} else {
  const long = git("log", "--format=%h%x09%s", `${BASE}..HEAD`)
    .split("\n")
    .filter((line) => line !== "")
    .map((line) => {
      const tab = line.indexOf("\t");
      return { hash: line.slice(0, tab), subject: line.slice(tab + 1) };
    })
    .filter(({ subject }) => [...subject].length > MAX_SUBJECT);
  for (const { hash, subject } of long) {
    console.error(
      `commit ${hash}: subject is ${[...subject].length} characters, more than ${MAX_SUBJECT}: "${subject}"; say what changed in the subject and why in the body (git commit --amend, or git rebase -i for an older one)`,
    );
  }
  if (long.length > 0) process.exit(1);
}
