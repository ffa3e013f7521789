// Who waits for a key to change (blocking reads, docs/api.md "Blocking reads"), and telling them when it does: after
// a write or delete through this instance, a change notice from Redis (another instance, the legacy app), or the
// files directory's watch. A waiter is told after the cache has dropped the key, so its next read sees the change.

export class KeyChanges {
  readonly #waiting = new Map<string, Set<(changed: boolean) => void>>()
  #count = 0
  #released = false

  /** Resolves true when `key` changes within `ms`, false when the time is up, `signal` aborts (the client went away)
   * or the waits are released. */
  wait(key: string, ms: number, signal?: AbortSignal): Promise<boolean> {
    if (this.#released || signal?.aborted) return Promise.resolve(false)
    return new Promise((resolve) => {
      const waiters = this.#waiting.get(key) ?? new Set()
      this.#waiting.set(key, waiters)
      this.#count++
      const abort = () => done(false)
      const done = (changed: boolean) => {
        clearTimeout(timer)
        signal?.removeEventListener('abort', abort)
        if (!waiters.delete(done)) return
        this.#count--
        if (waiters.size === 0 && this.#waiting.get(key) === waiters) this.#waiting.delete(key)
        resolve(changed)
      }
      const timer = setTimeout(() => done(false), ms)
      waiters.add(done)
      signal?.addEventListener('abort', abort, { once: true })
    })
  }

  /** `key` changed (null: every key may have). */
  changed(key: string | null, changed = true): void {
    const sets = key === null ? [...this.#waiting.values()] : [this.#waiting.get(key)]
    for (const waiters of sets) for (const done of [...(waiters ?? [])]) done(changed)
  }

  /** Ends every wait now, and refuses new ones: a shutdown must not wait for them. */
  release(): void {
    this.#released = true
    this.changed(null, false)
  }

  /** Reads waiting at this moment. */
  get waiting(): number {
    return this.#count
  }
}
