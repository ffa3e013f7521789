// `config-store export`: every key of the effective view as one bundle, to standard output or a 0600 file.
import { resolve } from 'node:path'
import { exportBundle, writePrivate } from '../../ops/bundle.js'
import { parse } from '../args.js'
import { type CliContext, print, withStore } from '../context.js'

export const usage = `config-store export [--out FILE]
  Writes every key of the effective view as one JSON bundle (to standard output, or FILE with mode 0600).
  The bundle holds credentials (magic_link_tokens): keep it safe.`

export async function run(args: string[], ctx: CliContext): Promise<number> {
  const { values } = parse(args, { out: { type: 'string' } })
  return withStore(ctx, async (store) => {
    const { text, keys } = await exportBundle(store)
    if (values.out === undefined) return print(ctx, text.trimEnd(), 0)
    writePrivate(resolve(ctx.cwd, values.out), text)
    return print(ctx, `exported ${keys} keys to ${values.out}`, 0)
  })
}
