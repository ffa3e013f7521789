// `config-store import`: an export bundle written back to the primary, all or nothing.
import { bundleConfigs } from '../../ops/bundle.js'
import { parse, readJson } from '../args.js'
import { type CliContext, cliActor, print, withStore } from '../context.js'

export const usage = `config-store import FILE [--dry-run]
  Writes every config of an export bundle to the primary layer, keeping each _updated_at. All or nothing: every
  document is validated first, and if a write fails the keys already written are put back as they were.`

export async function run(args: string[], ctx: CliContext): Promise<number> {
  const { values, positionals } = parse(args, { 'dry-run': { type: 'boolean' } }, 1, 1)
  const file = positionals[0] as string
  const configs = bundleConfigs(readJson(file, ctx.stdin, ctx.cwd), file)
  return withStore(ctx, async (store) => {
    const done = await store.importBundle(configs, {
      dryRun: values['dry-run'] === true,
      by: { actor: cliActor(ctx), via: 'import' },
    })
    const unchanged = done.unchanged ?? []
    const lines = done.keys.map((key) =>
      unchanged.includes(key)
        ? `  ${key}: unchanged (${done.primary} holds it as the bundle does; no new revision)`
        : `  ${key}: ${done.dryRun ? 'would be written' : 'written'}`,
    )
    const toWrite = done.keys.length - unchanged.length
    const head = done.dryRun
      ? `would import ${done.keys.length} keys into ${done.primary}: ${toWrite} to write, ${unchanged.length} unchanged${done.unchanged === null ? ` (${done.primary} could not be read: which are unchanged is not known)` : ''}`
      : `imported ${done.keys.length} keys into ${done.primary}: ${toWrite} written, ${unchanged.length} unchanged`
    return print(ctx, [head, ...lines].join('\n'), 0)
  })
}
