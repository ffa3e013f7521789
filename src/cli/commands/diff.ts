// `config-store diff KEY [FROM] [TO]`: the JSON Patch between two revisions.
import { parse } from '../args.js'
import { type CliContext, print, withStore } from '../context.js'
import { revisionArg } from './history.js'

export const usage = `config-store diff KEY [FROM] [TO]
  Prints the RFC 6902 JSON Patch from revision FROM to revision TO (default: the current document). Without FROM,
  what the latest change did: from the revision before it to the latest.`

export async function run(args: string[], ctx: CliContext): Promise<number> {
  const { positionals } = parse(args, {}, 1, 3)
  const [key, fromText, toText] = positionals as [string, string?, string?]
  const given = revisionArg(fromText, 'FROM')
  const to = revisionArg(toText, 'TO')
  return withStore(ctx, async (store) => {
    let from = given
    let until = to
    if (from === undefined) {
      const [latest, previous] = await store.history(key, 2)
      if (latest === undefined || previous === undefined)
        return print(ctx, `${key}: fewer than two revisions; nothing to compare`, 1)
      from = previous.revision
      until = latest.revision
    }
    const d = await store.diff(key, from, until)
    return print(ctx, JSON.stringify(d.patch, null, 2), 0)
  })
}
