// `config-store serve`: the HTTP service, until a signal ends it.
import { fatalLine } from '../../errors.js'
import { startServer } from '../../server.js'
import { parse } from '../args.js'
import { type CliContext, configOf } from '../context.js'

export const usage = `config-store serve
  Runs the HTTP service (the default command).`

export async function run(args: string[], ctx: CliContext): Promise<number> {
  parse(args, {})
  try {
    await startServer(configOf(ctx))
  } catch (err) {
    ctx.err(fatalLine(err, 'failed to start'))
    ctx.exit(1)
  }
  return -1 // keeps running until a signal
}
