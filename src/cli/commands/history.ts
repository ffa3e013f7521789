// `config-store history KEY`: a key's revisions, newest first, a line each.
import { AppError, UsageError } from '../../errors.js'
import type { Revision } from '../../store/history/schemas.js'
import type { ConfigStore } from '../../store/layered-store.js'
import { parse } from '../args.js'
import { type CliContext, print, withStore } from '../context.js'
import { suggesting } from './get.js'

export const usage = `config-store history KEY [--limit N] [--before REV] [--json]
  Lists the revisions of KEY, newest first (at most --limit, default 20; --before: older than that revision):
  revision, time, what it did, how it came, who made it, and the sha256 of the document after.`

/** A revision number given on the command line. */
export function revisionArg(text: string | undefined, name: string): number | undefined {
  if (text === undefined) return undefined
  if (!/^[1-9][0-9]{0,14}$/.test(text))
    throw new UsageError(`${name} must be a revision number (1, 2, …), not ${JSON.stringify(text)}`)
  return Number(text)
}

export function revisionLine(r: Revision): string {
  const sha = r.after === null ? '-' : r.after.slice(0, 12)
  return [String(r.revision).padStart(4), r.time, r.op.padEnd(6), r.via.padEnd(10), r.actor, sha].join('  ')
}

/** A key without revisions: fine when a layer holds it (written before history, or behind the service's back);
 * otherwise no such key, with the one a typo away. */
async function heldOrNotFound(store: ConfigStore, key: string): Promise<void> {
  try {
    await store.read(key)
  } catch (err) {
    if (!(err instanceof AppError && err.code === 'CONFIG_NOT_FOUND')) throw err
    await suggesting(
      store,
      key,
      new AppError('CONFIG_NOT_FOUND', `no such key: no layer holds ${key}, and history has no revision of it`),
    )
  }
}

export async function run(args: string[], ctx: CliContext): Promise<number> {
  const { values, positionals } = parse(
    args,
    { limit: { type: 'string' }, before: { type: 'string' }, json: { type: 'boolean' } },
    1,
  )
  const key = positionals[0] as string
  const limit = revisionArg(values.limit, '--limit') ?? 20
  const before = revisionArg(values.before, '--before')
  return withStore(ctx, async (store) => {
    const revisions = await store.history(key, Math.min(limit, 1000), before)
    if (revisions.length === 0 && before === undefined) await heldOrNotFound(store, key)
    if (values.json) return print(ctx, JSON.stringify(revisions, null, 2), 0)
    if (revisions.length === 0) return print(ctx, `${key}: no revisions`, 0)
    return print(ctx, revisions.map(revisionLine).join('\n'), 0)
  })
}
