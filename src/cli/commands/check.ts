// `config-store check`: verify, in the legacy script's words (`key: OK`, `key: INVALID (reason)`).
import { AppError, UsageError } from '../../errors.js'
import type { VerifyReply } from '../../ops/schemas.js'
import { verifyConfigStore } from '../../ops/verify.js'
import { parse, takeList } from '../args.js'
import { type CliContext, print, warn, withStore } from '../context.js'

export const usage = `config-store check [--keys KEY ...] [--raw] [--fail-on-drift] [--json]
  Reads every configured layer directly and prints "key: OK" or "key: INVALID (reason)" per key.
  Exit 0 when all are valid, 1 otherwise, 2 on bad arguments.`

/** What the counts mean, for a reader who has not read the README: which keys are missing and what to do, what
 * failed, or that all is well. */
export function explained(reply: VerifyReply): string[] {
  const missing = reply.results.filter((r) => r.status === 'MISSING').map((r) => r.key)
  const invalid = reply.results.filter((r) => r.status === 'INVALID').map((r) => r.key)
  const lines: string[] = []
  if (missing.length > 0)
    lines.push(
      `missing: ${missing.join(', ')}. No layer holds ${missing.length === 1 ? 'it' : 'them'}, and every layer answered: the legacy app's own check calls an absent key INVALID (payload is empty), so this check fails. A new store holds none yet: write each with config-store set KEY FILE, or bring the legacy app's with config-store migrate.`,
    )
  if (invalid.length > 0)
    lines.push(`invalid: ${invalid.join(', ')}: the reason is on each line above; the check fails.`)
  if (reply.unreachable.length > 0)
    lines.push(`incomplete: ${reply.unreachable.join(', ')} could not be reached, so the check fails.`)
  if (lines.length === 0)
    lines.push(reply.ok ? 'all keys checked are valid.' : 'drift between layers fails the check (--fail-on-drift).')
  return lines
}

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
      ...explained(reply),
    )
    return print(ctx, lines.join('\n'), reply.exit_code)
  })
}
