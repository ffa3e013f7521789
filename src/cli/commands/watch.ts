// `config-store watch [KEY…]`: a line per change as it happens, from the change feed, until interrupted.
import { isValidKey } from '../../../stores/layer.js'
import { UsageError } from '../../errors.js'
import type { FeedEvent } from '../../store/history/schemas.js'
import { parse } from '../args.js'
import { type CliContext, print, warn, withStore } from '../context.js'

export const usage = `config-store watch [KEY...] [--json]
  Prints one line per change of any key (or of the KEYs given) as it happens, until interrupted (Ctrl-C):
  time, key, revision, what it did, who made it and how it came. --json: each change event as a JSON line.`

export function eventLine({ event: e }: FeedEvent): string {
  const sha = e.sha256 === null ? '' : `  ${e.sha256.slice(0, 12)}`
  return `${e.time}  ${e.key}  r${e.revision}  ${e.op}  by ${e.actor} (${e.via})${sha}`
}

export async function run(args: string[], ctx: CliContext): Promise<number> {
  const { values, positionals: keys } = parse(args, { json: { type: 'boolean' } }, 0, 1000)
  for (const key of keys) if (!isValidKey(key)) throw new UsageError(`${JSON.stringify(key)} is not a key name`)
  return withStore(ctx, async (store) => {
    const subscription = store.feed.subscribe((e) => {
      if (keys.length > 0 && !keys.includes(e.event.key)) return
      print(ctx, values.json ? JSON.stringify({ id: e.id, ...e.event }) : eventLine(e), 0)
    })
    await subscription.ready
    warn(ctx, `watching ${keys.length > 0 ? keys.join(', ') : 'every key'} (${store.stats().history}); Ctrl-C ends`)
    await ctx.interrupted()
    subscription.close()
    return 0
  })
}
