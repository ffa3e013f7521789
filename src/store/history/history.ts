// History (docs/history.md): every change of a key's document in the primary layer is a revision, kept with its
// document, and an event in an ordered feed. It lives in Redis when Redis is configured (src/store/history/redis.ts)
// and otherwise in a journal in the files directory (src/store/history/journal.ts); both answer to this interface.
import { hash } from 'node:crypto'
import type { LayerName } from '../../../stores/layer.js'
import { AppError } from '../../errors.js'
import type { Attribution, FeedEvent, Revision } from './schemas.js'

/** A change the primary layer made, to be recorded. */
export interface Change {
  by: Attribution
  time: string
  /** The document's compact JSON after the change; null when it was deleted. */
  json: string | null
  source: LayerName
}

/** A revision as recorded, with its position in the feed. */
export interface Recorded {
  revision: Revision
  id: string
}

/** The primary's copy as a read saw it: its compact JSON and, for Redis, the text as stored. */
export interface Seen {
  json: string
  raw?: string | undefined
}

/** The primary holds a text at the key that is not a document (`text`): a write may replace it, saying so. */
export class UnreadableCopy extends Error {
  constructor(
    readonly text: string,
    reason: string,
  ) {
    super(reason)
  }
}

export interface Subscription {
  /** Resolves once every event recorded from then on will be heard. */
  ready: Promise<void>
  close(): void
}

export interface Feed {
  /** The events after position `id` (none given: no events, just the position now), or 'reset' when some of them
   * are no longer kept (or `id` is not a position of this feed). */
  after(id: string | undefined): Promise<{ events: FeedEvent[]; position: string } | 'reset'>
  /** Each event recorded by any instance from now on, in order. */
  subscribe(fn: (e: FeedEvent) => void): Subscription
  /** Whether `id` has the form of a position of this feed. */
  isPosition(id: string): boolean
  /** Positions in order: negative when `a` comes before `b`. */
  compare(a: string, b: string): number
  /** Feed connections open now. */
  readonly listeners: number
}

export interface History {
  readonly kind: 'redis' | 'journal' | 'off'
  /** Runs `fn` while no other write or observation of `key` runs: in this process, and, for the journal, in any
   * process sharing the files directory. */
  exclusive<T>(key: string, fn: () => Promise<T>): Promise<T>
  /** Redis as the primary: writes the document (`json`, or a delete for null) and its revision in one script.
   * `expected`: the raw text the key must hold (null: absent), or undefined for any. False when it does not hold;
   * 'absent' for a delete of a key that was not there (no revision). */
  swap?(
    key: string,
    expected: string | null | undefined,
    json: string | null,
    by: Attribution,
    time: string,
  ): Promise<Recorded | false | 'absent'>
  /** Records a change the primary made (inside `exclusive`). */
  record(key: string, change: Change): Promise<Recorded>
  /** After a change notice: the primary's copy now (`current` reads it; undefined: absent) is recorded as an
   * `external` revision unless the latest revision is that document already. `current` is read while no write of
   * the key runs (or, in Redis, checked again in the script that records it), so a read from before a write never
   * passes for a change. */
  observe(key: string, current: () => Promise<Seen | undefined>, source: LayerName): Promise<Recorded | undefined>
  /** Revisions newest first: at most `limit`, each older than `before` when given. */
  list(key: string, limit: number, before?: number): Promise<Revision[]>
  /** A revision and its document (null for a delete); undefined when it is not kept. */
  document(key: string, revision: number): Promise<{ revision: Revision; json: string | null } | undefined>
  readonly feed: Feed
  close(): Promise<void>
}

export const sha256Hex = (json: string) => hash('sha256', json, 'hex')

/** Calls every listener of a feed; one that throws does not stop the others. */
export class Listeners {
  readonly #fns = new Set<(e: FeedEvent) => void>()
  constructor(readonly onChange: (count: number) => void = () => undefined) {}
  add(fn: (e: FeedEvent) => void): () => void {
    this.#fns.add(fn)
    this.onChange(this.#fns.size)
    return () => {
      if (this.#fns.delete(fn)) this.onChange(this.#fns.size)
    }
  }
  emit(e: FeedEvent): void {
    for (const fn of this.#fns) {
      try {
        fn(e)
      } catch {
        // a listener's own failure is its own (an SSE stream that closed)
      }
    }
  }
  get size(): number {
    return this.#fns.size
  }
}

/** Runs tasks one after another per key, in this process. */
export class KeyQueue {
  readonly #tails = new Map<string, Promise<unknown>>()
  run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const run = (this.#tails.get(key) ?? Promise.resolve()).then(fn, fn)
    const tail = run.then(
      () => undefined,
      () => undefined,
    )
    this.#tails.set(key, tail)
    void tail.then(() => {
      if (this.#tails.get(key) === tail) this.#tails.delete(key)
    })
    return run
  }
}

/** No history (CONFIG_HISTORY_MAX=0): writes make no revision (their answers say so), and the feed stays empty. */
export function noHistory(): History {
  const queue = new KeyQueue()
  const none = (): never => {
    throw new AppError('NOT_FOUND', 'history is off here (CONFIG_HISTORY_MAX=0): no revisions or change feed are kept')
  }
  return {
    kind: 'off',
    exclusive: (key, fn) => queue.run(key, fn),
    record: async () => none(),
    observe: async () => undefined,
    list: async () => none(),
    document: async () => none(),
    feed: {
      after: async () => none(),
      subscribe: () => ({ ready: Promise.resolve(), close: () => undefined }),
      isPosition: (id) => /^\d{1,15}$/.test(id),
      compare: (a, b) => Number(a) - Number(b),
      listeners: 0,
    },
    close: async () => undefined,
  }
}
