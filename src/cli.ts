#!/usr/bin/env node
// The `config-store` command line (operations.md): built on the same configuration and store code as the server.
import { parseArgs } from 'node:util'
import { exitOnStartError, startServer } from './server.js'

const HELP = `usage: config-store [command] [options]

commands:
  serve     run the HTTP service (the default)

Configuration comes from the environment and ./.env (see README.md).
Run "config-store <command> --help" for a command's options.
`

export async function main(argv: string[]): Promise<number> {
  const [command = 'serve', ...rest] = argv
  if (command === '--help' || command === '-h' || command === 'help') {
    process.stdout.write(HELP)
    return 0
  }
  if (command !== 'serve') {
    process.stderr.write(`config-store: unknown command "${command}" (see config-store --help)\n`)
    return 2
  }
  const { values } = parseArgs({ args: rest, options: { help: { type: 'boolean', short: 'h' } }, strict: true })
  if (values.help) {
    process.stdout.write(
      'usage: config-store serve\n\nRuns the HTTP service with the configuration from the environment.\n',
    )
    return 0
  }
  await startServer().catch(exitOnStartError)
  return -1 // keeps running
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code >= 0) process.exitCode = code
  },
  (err: Error) => {
    process.stderr.write(`config-store: ${err.message}\n`)
    process.exitCode = 2
  },
)
