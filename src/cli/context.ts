// What a command runs with: its environment and working directory (where `.env` is read), its output streams, and
// standard input. The process gives its own (src/cli/bin.ts); tests give strings, and run commands in-process.
import { readFileSync } from 'node:fs'
import { userInfo } from 'node:os'
import pino from 'pino'
import { type AppConfig, configFrom, readEnvironment } from '../config.js'
import { createLogger } from '../logger.js'
import type { ConfigStore } from '../store/layered-store.js'
import { missingFilesDir, openStore } from '../store/open-store.js'

export interface CliContext {
  env: NodeJS.ProcessEnv
  cwd: string
  /** Writes to standard output. */
  out(text: string): void
  /** Writes to standard error. */
  err(text: string): void
  /** The whole of standard input. */
  stdin(): string
  /** Ends the process (a server that failed to start may hold connections half open). */
  exit(code: number): never
  /** Resolves when the command is asked to stop (SIGINT, SIGTERM): a command that runs until then waits on it. */
  interrupted(): Promise<void>
}

export function processContext(): CliContext {
  return {
    env: process.env,
    cwd: process.cwd(),
    out: (text) => process.stdout.write(text),
    err: (text) => process.stderr.write(text),
    stdin: () => readFileSync(0, 'utf8'),
    exit: (code) => process.exit(code),
    interrupted: () =>
      new Promise((resolve) => {
        process.once('SIGINT', () => resolve())
        process.once('SIGTERM', () => resolve())
      }),
  }
}

/** The configuration, as the server reads it; a variable the service does not know is warned about. */
export function configOf(ctx: CliContext): AppConfig {
  const environment = readEnvironment(ctx.env, ctx.cwd)
  for (const line of environment.warnings) warn(ctx, `warning: ${line}`)
  return configFrom(environment)
}

/** Who a command's changes are recorded as: `cli:<user>`. */
export function cliActor(ctx: CliContext): string {
  const user = ctx.env.USER ?? ctx.env.LOGNAME ?? safeUser()
  return `cli:${user}`
}

function safeUser(): string {
  try {
    return userInfo().username
  } catch {
    return 'unknown' // a uid with no passwd entry (a container started with --user)
  }
}

/** `text` and a newline on standard output; answers `code`, the command's exit status. */
export function print(ctx: CliContext, text: string, code: number): number {
  if (text) ctx.out(`${text}\n`)
  return code
}

/** A warning line on standard error. */
export const warn = (ctx: CliContext, text: string) => ctx.err(`config-store: ${text}\n`)

/** Opens the store as the server does, runs `fn` on it, and closes it. Quiet unless LOG_LEVEL asks: standard output
 * is for the command's output, and logs go to standard error. */
export async function withStore(
  ctx: CliContext,
  fn: (store: ConfigStore, config: AppConfig) => Promise<number>,
): Promise<number> {
  const config = configOf(ctx)
  const logger = createLogger(ctx.env.LOG_LEVEL ? config.LOG_LEVEL : 'silent', pino.destination(2))
  const missing = missingFilesDir(config)
  if (missing !== undefined) warn(ctx, `warning: ${missing}`)
  const opened = await openStore(config, logger)
  await opened.connected
  try {
    return await fn(opened.store, config)
  } finally {
    await opened.close()
  }
}
