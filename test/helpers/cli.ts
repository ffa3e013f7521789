// Running the command line in tests: in-process through the same `main` the binary runs (most tests), or as a real
// process (exit codes, signals, standard input), both with an environment of the test's own and nothing inherited
// but PATH and HOME.
import { type ChildProcess, spawn } from 'node:child_process'
import { main } from '../../src/cli/index.js'

export const ROOT = new URL('../..', import.meta.url).pathname

export interface CliResult {
  code: number | null
  stdout: string
  stderr: string
}

const baseEnv = (env: Record<string, string>) => ({
  PATH: process.env.PATH ?? '',
  HOME: process.env.HOME ?? '',
  ...env,
})

/** One command line run in this process. `exit` (a failed serve) throws instead of ending the test runner. */
export async function runCli(args: string[], env: Record<string, string>, stdin = ''): Promise<CliResult> {
  const run = startCli(args, env, stdin)
  const code = await run.done
  return { code, ...run.out }
}

/** A command line started in this process: what it printed so far, its exit status to come, and a way to interrupt
 * a command that runs until then (watch). */
export function startCli(args: string[], env: Record<string, string>, stdin = '') {
  let interrupt: () => void = () => undefined
  const stopped = new Promise<void>((resolve) => {
    interrupt = resolve
  })
  const out = { stdout: '', stderr: '' }
  const done = main(args, {
    env: baseEnv(env),
    cwd: ROOT,
    out: (text) => {
      out.stdout += text
    },
    err: (text) => {
      out.stderr += text
    },
    stdin: () => stdin,
    exit: (status) => {
      throw new Error(`the command asked to exit ${status}`)
    },
    interrupted: () => stopped,
  })
  return { out, interrupt, done }
}

export interface Spawned {
  child: ChildProcess
  /** What it printed so far. */
  out: { stdout: string; stderr: string }
  exited: Promise<number | null>
}

/** The command line as a real process (from source, through tsx). */
export function spawnCli(args: string[], env: Record<string, string>, stdin?: string): Spawned {
  return spawnProcess(process.execPath, ['--import', 'tsx', 'src/cli/bin.ts', ...args], env, stdin)
}

/** `command` as a real process in the project's folder, as a user's shell would start it: with `env`, PATH and HOME,
 * and nothing else of this run's environment. */
export function spawnProcess(command: string, args: string[], env: Record<string, string>, stdin?: string): Spawned {
  const child = spawn(command, args, {
    cwd: ROOT,
    env: baseEnv(env),
    stdio: [stdin === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
  })
  const out = { stdout: '', stderr: '' }
  child.stdout?.on('data', (c: Buffer) => {
    out.stdout += c.toString()
  })
  child.stderr?.on('data', (c: Buffer) => {
    out.stderr += c.toString()
  })
  if (stdin !== undefined) child.stdin?.end(stdin)
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
  return { child, out, exited }
}

/** A spawned command line, once it has exited. */
export async function spawnCliDone(args: string[], env: Record<string, string>, stdin?: string): Promise<CliResult> {
  const run = spawnCli(args, env, stdin)
  const code = await run.exited
  return { code, ...run.out }
}
