// The AbsError an operation rejects with, for assertions on its code and message.

import { AbsError } from "../../src/errors.js";

export async function refusal(promise: Promise<unknown>): Promise<AbsError> {
  try {
    await promise;
  } catch (err) {
    if (err instanceof AbsError) return err;
    throw err;
  }
  throw new Error("expected a refusal");
}
