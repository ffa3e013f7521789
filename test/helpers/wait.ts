// Waiting in tests: for a condition to hold (polling), never for a fixed time where a condition can be named.
export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/** Resolves once `check` holds; throws when it has not within `ms`. */
export async function until(check: () => Promise<boolean> | boolean, ms = 3000, everyMs = 10): Promise<void> {
  if (!(await holdsWithin(check, ms, everyMs))) throw new Error(`condition not met within ${ms} ms`)
}

/** Whether `check` holds within `ms` (checked every `everyMs`, and once more at the deadline). */
export async function holdsWithin(check: () => Promise<boolean> | boolean, ms: number, everyMs = 2): Promise<boolean> {
  const deadline = Date.now() + ms
  while (Date.now() < deadline) {
    if (await check()) return true
    await sleep(everyMs)
  }
  return check()
}
