// `config-store check`: verify, in the legacy script's words (`key: OK`, `key: INVALID (reason)`).
import { AppError, UsageError } from '../../errors.js'
import { verifyConfigStore } from '../../ops/verify.js'
import { parse, takeList } from '../args.js'
import { type CliContext, print, warn, withStore } from '../context.js'

export const usage = `config-store check [--keys KEY ...] [--raw] [--fail-on-drift] [--json]
  Reads every configured layer directly and prints "key: OK" or "key: INVALID (reason)" per key.
  Exit 0 when all are valid, 1 otherwise, 2 on bad arguments.`

export async function run(args: string[], ctx: CliContext): Promise<number> {
  const [keys, rest] = takeList(args, '--keys')
  const { values } = parse(rest, {
    raw: { type: 'boolean' },
    'fail-on-drift': { type: 'boolean' },
    json: { type: 'boolean' },
  })
  return withStore(ctx, async (store) => {
    const reply = await verifyConfigStore(store, {
      keys,
      raw: values.raw,
      failOnDrift: values['fail-on-drift'],
      admin: true,
    }).catch((err: unknown) => {
      throw err instanceof AppError && err.code === 'BAD_REQUEST' ? new UsageError(err.message) : err
    })
    for (const layer of reply.unreachable) warn(ctx, `the ${layer} layer could not be reached; the check is incomplete`)
    if (values.json) return print(ctx, JSON.stringify(reply, null, 2), reply.exit_code)
    const lines = reply.results.map((r) =>
      r.status === 'OK'
        ? `${r.key}: OK`
        : r.status === 'MISSING'
          ? `${r.key}: MISSING`
          : `${r.key}: INVALID (${r.message})`,
    )
    for (const r of reply.results)
      for (const d of r.drift)
        lines.push(`${r.key}: DRIFT ${d.layers.join('/')}${d.newer ? ` (${d.newer} newer)` : ''}`)
    if (values.raw) for (const r of reply.results) if (r.payload) lines.push(`${r.key}: ${JSON.stringify(r.payload)}`)
    const count = (status: string) => reply.results.filter((r) => r.status === status).length
    lines.push(
      `${reply.results.length} keys checked: ${count('OK')} OK, ${count('INVALID')} INVALID, ${count('MISSING')} MISSING`,
      '-'.repeat(40),
    )
    return print(ctx, lines.join('\n'), reply.exit_code)
  })
}
