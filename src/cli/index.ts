// The `config-store` command line (docs/operations.md "The command line"), on the same configuration and store code
// as the server. A registry of commands, one file each under commands/, exporting its usage and `run`; importing
// this module runs nothing (src/cli/bin.ts is the process's entry). Errors end as one line on standard error, with
// the exit status of their code in the error table (src/errors.ts).
import { exitCodeOf, fatalLine, UsageError } from '../errors.js'
import { VERSION } from '../version.js'
import * as check from './commands/check.js'
import * as diff from './commands/diff.js'
import * as exportCommand from './commands/export.js'
import * as get from './commands/get.js'
import * as history from './commands/history.js'
import * as importCommand from './commands/import.js'
import * as migrate from './commands/migrate.js'
import * as rollback from './commands/rollback.js'
import * as serve from './commands/serve.js'
import * as set from './commands/set.js'
import * as watch from './commands/watch.js'
import { type CliContext, print } from './context.js'

export interface Command {
  usage: string
  /** Answers the exit status, or -1 for a command that keeps the process running (serve). */
  run(args: string[], ctx: CliContext): Promise<number>
}

export const COMMANDS: Readonly<Record<string, Command>> = {
  serve,
  check,
  migrate,
  get,
  set,
  export: exportCommand,
  import: importCommand,
  history,
  diff,
  rollback,
  watch,
}

const HELP = `usage: config-store <command> [options]

commands:
${Object.values(COMMANDS)
  .map((c) => `  ${c.usage.split('\n')[0]}`)
  .join('\n')}

Configuration comes from the environment and ./.env, as for the server (see README.md).
"config-store --version" prints the version.
"config-store <command> --help" describes a command.`

/** Runs one command line; never throws. */
export async function main(argv: string[], ctx: CliContext): Promise<number> {
  try {
    const [name = 'serve', ...args] = argv
    if (name === '--help' || name === '-h' || name === 'help') return print(ctx, HELP, 0)
    if (name === '--version' || name === '-V' || name === 'version') return print(ctx, VERSION, 0)
    const command = Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined
    if (command === undefined) throw new UsageError(`unknown command "${name}" (see config-store --help)`)
    if (args.includes('--help') || args.includes('-h')) return print(ctx, command.usage, 0)
    return await command.run(args, ctx)
  } catch (err) {
    ctx.err(fatalLine(err))
    return exitCodeOf(err)
  }
}
