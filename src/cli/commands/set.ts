// `config-store set`: validate a document from a file or standard input and write it to the primary.
import { isDocument } from '../../../stores/layer.js'
import { typoWarning } from '../../did-you-mean.js'
import { AppError, UsageError } from '../../errors.js'
import { parse, readJson } from '../args.js'
import { type CliContext, cliActor, print, warn, withStore } from '../context.js'

export const usage = `config-store set KEY [FILE|-]
  Validates the JSON document in FILE (or on standard input) and writes it to the primary layer.`

export async function run(args: string[], ctx: CliContext): Promise<number> {
  const { positionals } = parse(args, {}, 1, 2)
  const [key, file = '-'] = positionals as [string, string?]
  const doc = readJson(file, ctx.stdin, ctx.cwd)
  if (!isDocument(doc)) throw new UsageError(`${file === '-' ? 'standard input' : file} does not hold a JSON object`)
  return withStore(ctx, async (store) => {
    const w = await store.write(key, doc, { by: { actor: cliActor(ctx), via: 'cli' } }).catch((err: unknown) => {
      // Every validation error on its own line, with its path.
      if (!(err instanceof AppError && err.details !== undefined)) throw err
      throw new AppError(err.code, [err.message, ...err.details.map((d) => `  ${d.path} ${d.message}`)].join('\n'))
    })
    const [near] = w.created === true ? await store.similarKeys(key).catch(() => []) : []
    if (near !== undefined) warn(ctx, `warning: ${typoWarning(key, near)}`)
    return print(
      ctx,
      `${key}: written to ${w.source} as revision ${w.revision ?? '(not recorded)'} (_updated_at ${w.updatedAt})`,
      0,
    )
  })
}
