// History in Redis (docs/history.md "In Redis"), beside the config keys and never mistaken for one (a config key
// has no colon):
//   <prefix>:history:{<prefix><key>}  a list of revisions (JSON), newest first, at most CONFIG_HISTORY_MAX
//   <prefix>:docs:{<prefix><key>}     a hash: revision number → the document's text as it was stored, and `head`
//   <prefix>:changes                  the change feed, a Redis Stream (XADD … MAXLEN ~ CONFIG_FEED_MAX)
// The braces put a key's history in the slot of the key itself. A write, its revision and its event are one script;
// in a Redis Cluster, where the feed lives in a slot of its own, the event is added right after it.
import { type Commands, directWrites, type RedisClient, type Replication } from '../../../stores/redis-replicas.js'
import { LayerUnavailableError, reasonOf } from '../../errors.js'
import {
  type Change,
  type Feed,
  type History,
  KeyQueue,
  Listeners,
  type Recorded,
  type Seen,
  sha256Hex,
  UnreadableCopy,
} from './history.js'
import type { Attribution, ChangeEvent, FeedEvent, Revision, Via } from './schemas.js'

// The revision after the latest one: appended (its JSON from `meta`, the fields the caller encoded), the oldest
// trimmed with their documents, the event added to the feed. The documents' hash also holds `head`: the latest
// revision number and its sha256, so a write reads two short fields instead of decoding the list. Revisions in the
// list are consecutive, so the ones trimmed are known by number.
// Reads cur (the key's text, or false), n and before (the latest revision and its sha256, or 0 and nil) and latest
// (its document, or false) for the script that follows.
const APPEND = `
local n, before, latest = 0, nil, false
-- Every name is read first: one holding the wrong type fails the script before it writes anything.
local len = redis.call('LLEN', KEYS[2])
-- In a Redis Cluster the feed is in another slot, so the service adds the event after the script (no KEYS[4]).
local feed = KEYS[4]
if feed then redis.call('XLEN', feed) end
local head = redis.call('HGET', KEYS[3], 'head')
if head then
  local num, sha = string.match(head, '^(%d+) (%x*)$')
  n = tonumber(num)
  if sha ~= '' then before = sha end
else
  head = redis.call('LINDEX', KEYS[2], 0) -- a history kept before 'head' was
  if head then
    head = cjson.decode(head)
    n = head.revision
    if head.after ~= cjson.null then before = head.after end
  end
end
if n > 0 then latest = redis.call('HGET', KEYS[3], n) end
local cur = redis.call('GET', KEYS[1])
local function append(n, op, json, sha, meta, max, feedMax, key, time, actor, via, source)
  local b = before and ('"' .. before .. '"') or 'null'
  local a = sha ~= '' and ('"' .. sha .. '"') or 'null'
  redis.call('LPUSH', KEYS[2], '{"revision":' .. n .. ',"op":"' .. op .. '","before":' .. b .. ',"after":' .. a .. ',' .. meta)
  if json then
    redis.call('HSET', KEYS[3], n, json, 'head', n .. ' ' .. sha)
  else
    redis.call('HSET', KEYS[3], 'head', n .. ' ' .. sha)
  end
  if len >= max then
    redis.call('LTRIM', KEYS[2], 0, max - 1)
    for old = n - len, n - max do redis.call('HDEL', KEYS[3], old) end
  end
  if not feed then return '' end
  return redis.call('XADD', feed, 'MAXLEN', '~', feedMax, '*', 'key', key, 'revision', n, 'time', time,
    'actor', actor, 'via', via, 'op', op, 'sha256', sha, 'source', source)
end
`

// KEYS: the config key, its history, its documents, the feed. ARGV: the expectation ('any', 'absent', 'text' or
// 'unreadable'), the expected text, the new text ('' with op 'delete'), its sha256, time, actor, via, max, feedMax,
// key, op, meta, and with 'unreadable' the sha256 of the text replaced.
// Answers {1, revision, id, the sha256 before}; {0} when the expectation fails; {2} for a delete of nothing; {-1}
// when the key holds something its latest revision does not (an external write not yet recorded: observe it, then
// write again).
const WRITE = `${APPEND}
if ARGV[1] == 'absent' then
  if cur then return {0} end
elseif ARGV[1] == 'text' or ARGV[1] == 'unreadable' then
  if cur ~= ARGV[2] then return {0} end
end
-- 'unreadable': the key holds a text that is not a document; it is replaced, 'before' its sha256 (ARGV[13]).
if ARGV[1] == 'unreadable' then before = ARGV[13] elseif latest ~= cur then return {-1} end
local op = ARGV[11]
-- The key first: Redis refuses a script's first write when it is out of memory, and then none of the rest (a delete
-- is never refused, and frees memory).
if op == 'delete' then
  if not cur then return {2} end
  redis.call('DEL', KEYS[1])
else
  redis.call('SET', KEYS[1], ARGV[3])
end
local id = append(n + 1, op, op == 'write' and ARGV[3] or nil, ARGV[4], ARGV[12], tonumber(ARGV[8]), ARGV[9],
  ARGV[10], ARGV[5], ARGV[6], ARGV[7], 'redis')
return {1, n + 1, id, before or ''}`

// ARGV: what the key was seen to hold ('1' and '' for absent, or '0' and its text), its sha256, time, max, feedMax,
// key, source, meta. Appends an external revision when the key still holds that and its latest revision is not it.
const OBSERVE = `${APPEND}
if ARGV[1] == '1' then
  if cur then return {0} end
elseif cur ~= ARGV[2] then
  return {0}
end
if latest == cur then return {0} end
local op = cur and 'write' or 'delete'
local id = append(n + 1, op, cur or nil, ARGV[3], ARGV[9], tonumber(ARGV[5]), ARGV[6], ARGV[7], ARGV[4],
  'external', 'external', ARGV[8])
return {1, n + 1, id, before or ''}`

// A change made elsewhere (a PHP primary): ARGV the text ('' for a delete), its sha256, time, actor, via, max,
// feedMax, source, op, key, meta.
const RECORD = `${APPEND}
local op = ARGV[9]
local id = append(n + 1, op, op == 'write' and ARGV[1] or nil, ARGV[2], ARGV[11], tonumber(ARGV[6]), ARGV[7],
  ARGV[10], ARGV[3], ARGV[4], ARGV[5], ARGV[8])
return {1, n + 1, id, before or ''}`

/** The fields of a revision the scripts do not add (they add revision, op, before and after), as the end of its JSON
 * text. */
const metaOf = (r: Pick<Revision, 'time' | 'actor' | 'via' | 'source'>) =>
  JSON.stringify({ time: r.time, actor: r.actor, via: r.via, source: r.source }).slice(1)

type ScriptCall = (...args: (string | number)[]) => unknown
/** What a script's revision holds besides its number and the sha256 before it. */
type RevisionMeta = Omit<Revision, 'revision' | 'before'>

export interface RedisHistoryOptions {
  redis: RedisClient
  prefix: string
  max: number
  feedMax: number
  /** A connection of its own for the feed's blocking reads (made when the first listener comes). */
  connect: () => RedisClient
  /** The primary's copy now, when a write finds an external change not yet recorded. */
  current: (key: string) => Promise<Seen | undefined>
  onListeners?: (count: number) => void
  /** How writes are sent and confirmed (REDIS_WRITE_REPLICAS); default: on their own. */
  replication?: Replication
  /** A revision recorded in a cluster whose feed event could not be added after it. */
  onEventLost?: (key: string, reason: string) => void
}

const STREAM_ID = /^\d{1,20}-\d{1,20}$/

/** Stream positions in order: `a` before `b` is negative. */
export function compareIds(a: string, b: string): number {
  const [am = 0n, as = 0n] = a.split('-').map(BigInt)
  const [bm = 0n, bs = 0n] = b.split('-').map(BigInt)
  return am === bm ? Number(as - bs) : am < bm ? -1 : 1
}

function eventOf(id: string, fields: string[]): FeedEvent {
  const f: Record<string, string> = {}
  for (let i = 0; i + 1 < fields.length; i += 2) f[fields[i] as string] = fields[i + 1] as string
  const event: ChangeEvent = {
    key: f.key ?? '',
    revision: Number(f.revision),
    time: f.time ?? '',
    actor: f.actor ?? '',
    via: f.via as Via,
    op: f.op === 'delete' ? 'delete' : 'write',
    sha256: f.sha256 ? f.sha256 : null,
    source: (f.source ?? 'redis') as ChangeEvent['source'],
  }
  return { id, event }
}

export function createRedisHistory(opts: RedisHistoryOptions): History {
  const { redis, prefix, max, feedMax } = opts
  const stream = `${prefix}:changes`
  // A cluster cannot run a script over keys of several slots: the feed is left out of the script's keys there.
  const cluster = redis.isCluster
  const names = (key: string) => {
    const full = `${prefix}${key}`
    const own = [full, `${prefix}:history:{${full}}`, `${prefix}:docs:{${full}}`]
    return cluster ? own : [...own, stream]
  }
  const replication = opts.replication ?? directWrites(redis)
  /** A script, sent through `replication`: its reply. In a cluster, the event of the revision it recorded is added
   * after it (`event`: its fields but the revision); when that fails, the revision stands and the feed misses it. */
  const script = (name: string, lua: string) => {
    replication.client.defineCommand(name, { numberOfKeys: cluster ? 3 : 4, lua })
    return async (key: string, args: (string | number)[], rev: RevisionMeta) => {
      // (Defined on the connection writes go on, so it is there on that connection's pipelines.)
      const send = (c: Commands) =>
        ((c as unknown as Record<string, ScriptCall>)[name] as ScriptCall)(...names(key), ...args)
      // Only {1, …} wrote anything ({0}: an expectation failed, {2}: a delete of nothing, {-1}: observe first).
      const reply = await replication.write<unknown[]>(`${prefix}${key}`, send, (r) => r[0] === 1)
      if (!cluster || reply[0] !== 1) return reply
      const { time, actor, via, op, after, source } = rev
      const fields = { key, revision: reply[1], time, actor, via, op, sha256: after ?? '', source }
      try {
        reply[2] = await redis.xadd(stream, 'MAXLEN', '~', feedMax, '*', ...Object.entries(fields).flat().map(String))
      } catch (err) {
        opts.onEventLost?.(key, reasonOf(err))
      }
      return reply
    }
  }
  const write = script('configStoreWrite', WRITE)
  const observeScript = script('configStoreObserve', OBSERVE)
  const recordScript = script('configStoreRecord', RECORD)
  const queue = new KeyQueue()
  // The scripts answer {1, revision, feed id, the sha256 before ('' for none)}.
  const recorded = (reply: unknown[], rev: RevisionMeta): Recorded => ({
    id: String(reply[2]),
    revision: { revision: Number(reply[1]), before: reply[3] ? String(reply[3]) : null, ...rev },
  })
  async function observe(
    key: string,
    seen: Seen | undefined,
    source: Revision['source'],
  ): Promise<Recorded | undefined> {
    const time = new Date().toISOString()
    const sha = seen === undefined ? '' : sha256Hex(seen.json)
    const raw = seen?.raw ?? seen?.json ?? ''
    const meta = metaOf({ time, actor: 'external', via: 'external', source })
    const args = [seen === undefined ? '1' : '0', raw, sha, time, max, feedMax, key, source, meta]
    const op = seen === undefined ? 'delete' : 'write'
    const rev: RevisionMeta = { time, actor: 'external', via: 'external', op, after: sha || null, source }
    const reply = await observeScript(key, args, rev)
    return reply[0] === 1 ? recorded(reply, rev) : undefined
  }

  const listeners = new Listeners(opts.onListeners)
  let reader: RedisClient | undefined
  let reading = false
  let starting: Promise<void> = Promise.resolve()

  /** While anyone listens: blocking reads of the stream on a connection of its own, each event to every listener. */
  async function readLoop(from: string): Promise<void> {
    let last = from
    reader ??= opts.connect()
    try {
      while (listeners.size > 0 && reader.status !== 'end') {
        let batch: [string, [string, string[]][]][] | null
        try {
          batch = (await reader.xread('COUNT', 500, 'BLOCK', 1000, 'STREAMS', stream, last)) as typeof batch
        } catch {
          await new Promise((r) => setTimeout(r, 200)) // Redis down: try again, from the same position
          continue
        }
        for (const [, entries] of batch ?? [])
          for (const [id, fields] of entries) {
            last = id
            listeners.emit(eventOf(id, fields))
          }
      }
    } finally {
      reading = false
    }
  }

  async function trimmedAfter(id: string): Promise<boolean> {
    if ((await redis.xrange(stream, id, id)).length > 0) return false
    const info = (await redis.call('XINFO', 'STREAM', stream).catch(() => [])) as unknown[]
    const field = (name: string) => info[info.indexOf(name) + 1]
    const first = (field('first-entry') as [string] | null | undefined)?.[0]
    const trimmed = Number(field('entries-added')) > Number(field('length'))
    return first !== undefined && trimmed && compareIds(id, first) < 0
  }

  async function position(): Promise<string> {
    const newest = await redis.xrevrange(stream, '+', '-', 'COUNT', 1)
    return newest[0]?.[0] ?? '0-0'
  }

  const feed: Feed = {
    isPosition: (id) => STREAM_ID.test(id),
    compare: compareIds,
    get listeners() {
      return listeners.size
    },
    subscribe(fn) {
      const close = listeners.add(fn)
      if (!reading) {
        reading = true
        starting = position()
          .catch(() => '$')
          .then((from) => {
            void readLoop(from)
          })
      }
      return { close, ready: starting }
    },
    async after(id) {
      const now = await position().catch((err) => {
        throw new LayerUnavailableError('redis', reasonOf(err), err)
      })
      if (id === undefined) return { events: [], position: now }
      if (!STREAM_ID.test(id) || compareIds(id, now) > 0) return 'reset'
      // The events after `id` are all kept unless trimming (MAXLEN ~) has reached them: `id` itself gone, older than
      // the first entry kept, while some entries were trimmed.
      if (await trimmedAfter(id)) return 'reset'
      const events: FeedEvent[] = []
      let from = `(${id}`
      for (;;) {
        const batch = await redis.xrange(stream, from, now, 'COUNT', 1000)
        for (const [eid, fields] of batch) events.push(eventOf(eid, fields))
        if (batch.length < 1000) break
        from = `(${events[events.length - 1]?.id}`
      }
      return { events, position: now }
    },
  }

  const UNREADABLE_NOTE = 'the copy it replaced could not be parsed'
  /** Writes over `text` (which is no document), with a revision whose `before` is its sha256 and a note saying so;
   * undefined when the key no longer holds that text. */
  async function replaceUnreadable(
    key: string,
    text: string,
    json: string | null,
    sha: string,
    time: string,
    by: Attribution,
  ): Promise<Recorded | 'absent' | undefined> {
    const op = json === null ? 'delete' : 'write'
    const note = { note: UNREADABLE_NOTE }
    const meta = `${metaOf({ time, ...by, source: 'redis' }).slice(0, -1)},"note":${JSON.stringify(UNREADABLE_NOTE)}}`
    const args = [
      'unreadable',
      text,
      json ?? '',
      sha,
      time,
      by.actor,
      by.via,
      max,
      feedMax,
      key,
      op,
      meta,
      sha256Hex(text),
    ]
    const rev: RevisionMeta = { time, ...by, op, after: sha || null, source: 'redis', ...note }
    const reply = await write(key, args, rev)
    if (reply[0] === 1) return recorded(reply, rev)
    return undefined
  }

  /** The newest revision's number in a key's list, or undefined when it has none. */
  async function newestRevision(list: string): Promise<number | undefined> {
    const head = await redis.lindex(list, 0)
    return head === null ? undefined : (JSON.parse(head) as Revision).revision
  }

  return {
    kind: 'redis',
    feed,
    // The scripts are atomic: only this process's observations of a key are serialised, so that two notices of one
    // change do not both read and record.
    exclusive: (key, fn) => queue.run(key, fn),
    async swap(key, expected, json, by, time) {
      const mode = expected === undefined ? 'any' : expected === null ? 'absent' : 'text'
      const op = json === null ? 'delete' : 'write'
      const sha = json === null ? '' : sha256Hex(json)
      const meta = metaOf({ time, ...by, source: 'redis' })
      const args = [mode, expected ?? '', json ?? '', sha, time, by.actor, by.via, max, feedMax, key, op, meta]
      const rev: RevisionMeta = { time, ...by, op, after: sha || null, source: 'redis' }
      for (let attempt = 0; ; attempt++) {
        const reply = await write(key, args, rev)
        if (reply[0] === 0) return false
        if (reply[0] === 2) return 'absent'
        if (reply[0] === 1) return recorded(reply, rev)
        // The key holds a change its history does not: recorded first, as external, then written again.
        if (attempt >= 5) throw new LayerUnavailableError('redis', `${key} keeps changing outside the service`)
        const seen = await opts.current(key).catch((err: unknown) => err)
        if (seen instanceof UnreadableCopy) {
          // A text that is not a document cannot be a revision: the write replaces it, and its revision says so.
          const replaced = await replaceUnreadable(key, seen.text, json, sha, time, by)
          if (replaced !== undefined) return replaced
        } else if (!(seen instanceof Error))
          await observe(key, seen as Seen | undefined, 'redis').catch(() => undefined)
      }
    },
    async record(key, change: Change) {
      const op = change.json === null ? 'delete' : 'write'
      const sha = change.json === null ? '' : sha256Hex(change.json)
      const { actor, via } = change.by
      const meta = metaOf({ time: change.time, actor, via, source: change.source })
      const args = [change.json ?? '', sha, change.time, actor, via, max, feedMax, change.source, op, key, meta]
      const rev: RevisionMeta = { time: change.time, actor, via, op, after: sha || null, source: change.source }
      return recorded(await recordScript(key, args, rev), rev)
    },
    observe: (key, current, source) => queue.run(key, async () => observe(key, await current(), source)),
    // The list holds consecutive revisions, newest first, so a page is a range computed from the newest one: only
    // what it needs is read. A list that is not consecutive (never seen; kept for safety) is read whole.
    async list(key, limit, before) {
      const list = names(key)[1] as string
      const parse = (texts: string[]) => texts.map((t) => JSON.parse(t) as Revision)
      if (before === undefined) return parse(await redis.lrange(list, 0, limit - 1))
      const newest = await newestRevision(list)
      if (newest === undefined) return []
      const from = Math.max(0, newest - before + 1)
      const page = parse(await redis.lrange(list, from, from + limit - 1))
      if (page.every((r, i) => r.revision === newest - from - i)) return page
      return parse(await redis.lrange(list, 0, -1))
        .filter((r) => r.revision < before)
        .slice(0, limit)
    },
    async document(key, revision) {
      const [, list, docs] = names(key) as [string, string, string]
      const newest = await newestRevision(list)
      if (newest === undefined || revision > newest) return undefined
      const at = await redis.lindex(list, newest - revision)
      let found = at === null ? undefined : (JSON.parse(at) as Revision)
      if (found !== undefined && found.revision !== revision)
        found = (await redis.lrange(list, 0, -1))
          .map((t) => JSON.parse(t) as Revision)
          .find((r) => r.revision === revision)
      if (found === undefined) return undefined
      const json = found.op === 'delete' ? null : await redis.hget(docs, String(revision))
      return { revision: found, json }
    },
    async close() {
      const r = reader
      reader = undefined
      r?.disconnect()
    },
  }
}

export type { Attribution }
