// `config-store get`: one document, effective or from one layer, with a warning when it is not the primary's.
import { LAYER_ORDER, type LayerName } from '../../../stores/layer.js'
import { AppError, UsageError } from '../../errors.js'
import type { ConfigStore } from '../../store/layered-store.js'
import { parse } from '../args.js'
import { type CliContext, print, warn, withStore } from '../context.js'

export const usage = `config-store get KEY [--source redis|php|files]
  Prints the effective document of KEY (or that one layer's copy) as JSON.`

/** A CONFIG_NOT_FOUND for `key` names the key a typo away, when there is one; any other error as it is. */
export async function suggesting(store: ConfigStore, key: string, err: unknown): Promise<never> {
  if (err instanceof AppError && err.code === 'CONFIG_NOT_FOUND') {
    const [near] = await store.similarKeys(key).catch(() => [])
    if (near !== undefined) throw new AppError('CONFIG_NOT_FOUND', `${err.message}; did you mean ${near}?`)
  }
  throw err
}

export async function run(args: string[], ctx: CliContext): Promise<number> {
  const { values, positionals } = parse(args, { source: { type: 'string' } }, 1)
  const key = positionals[0] as string
  const source = values.source
  if (source !== undefined && !LAYER_ORDER.includes(source as LayerName))
    throw new UsageError(`--source must be one of: ${LAYER_ORDER.join(', ')}`)
  return withStore(ctx, async (store) => {
    const r = await (source === undefined ? store.read(key) : store.readFrom(source as LayerName, key)).catch(
      (err: unknown) => suggesting(store, key, err),
    )
    const { primary } = store.stats()
    if (source === undefined && r.stale)
      warn(ctx, `${r.source} could not be reached; this is its last-known-good copy of ${key}`)
    else if (source === undefined && r.source !== primary)
      warn(ctx, `served by ${r.source}, a fallback: ${primary} could not answer for ${key}`)
    return print(ctx, JSON.stringify(JSON.parse(r.json), null, 2), 0)
  })
}
