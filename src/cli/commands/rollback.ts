// `config-store rollback KEY REV`: an old revision's document written again, as a new revision.
import { UsageError } from '../../errors.js'
import { parse } from '../args.js'
import { type CliContext, cliActor, print, withStore } from '../context.js'
import { revisionArg } from './history.js'

export const usage = `config-store rollback KEY REV
  Writes revision REV's document of KEY again, as a new revision: checked against today's schema and stamped now.`

export async function run(args: string[], ctx: CliContext): Promise<number> {
  const { positionals } = parse(args, {}, 2)
  const [key, text] = positionals as [string, string]
  const revision = revisionArg(text, 'REV')
  if (revision === undefined) throw new UsageError('REV is missing')
  return withStore(ctx, async (store) => {
    const w = await store.rollback(key, revision, { by: { actor: cliActor(ctx), via: 'rollback' } })
    return print(
      ctx,
      `${key}: revision ${revision} written again to ${w.source} as revision ${w.revision ?? '(not recorded)'} (_updated_at ${w.updatedAt})`,
      0,
    )
  })
}
