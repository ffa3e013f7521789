// Started through npm, as the README says (`npm start`, `npx config-store watch`): a signal to the process that was
// started stops the service (or the watch) gracefully, with no process left behind. npm passes the signal to a
// `sh -c`, and Debian's dash dies of it without passing it on (src/cli/launcher.ts). Needs the build (`npm ci`).
import type { ChildProcess } from 'node:child_process'
import { readdirSync, readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { nodeVersionWarning } from '../src/cli/node-version.js'
import { tempDir } from './helpers/app.js'
import { spawnProcess } from './helpers/cli.js'
import { until } from './helpers/wait.js'

const launch = spawnProcess

/** Every process below `pid`, from /proc. */
function descendants(pid: number): number[] {
  const parents = new Map<number, number[]>()
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8')
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1])
      parents.set(ppid, [...(parents.get(ppid) ?? []), Number(entry)])
    } catch {
      // gone meanwhile
    }
  }
  const found: number[] = []
  const walk = (p: number) => {
    for (const c of parents.get(p) ?? []) {
      found.push(c)
      walk(c)
    }
  }
  walk(pid)
  return found
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

/** The node processes below a launcher, by their command line. */
const nodesBelow = (launcher: ChildProcess, match: RegExp) =>
  descendants(launcher.pid as number).filter((p) => {
    try {
      return match.test(readFileSync(`/proc/${p}/cmdline`, 'utf8').replaceAll('\0', ' '))
    } catch {
      return false
    }
  })

describe('started through npm', () => {
  it('SIGTERM to `npm start` closes the service gracefully and leaves no process listening', async () => {
    const run = launch('npm', ['start', '--silent'], { PORT: '0', CONFIG_FILES_DIR: tempDir() })
    await until(() => /listening on/.test(run.out.stdout) || run.child.exitCode !== null, 15_000, 50)
    const started = JSON.parse(run.out.stdout.split('\n').find((l) => l.includes('listening on')) as string)
    expect(alive(started.pid)).toBe(true)
    run.child.kill('SIGTERM')
    await run.exited
    await until(() => !alive(started.pid), 10_000, 50)
    expect(run.out.stdout).toContain('shutting down: finishing requests in flight')
  })

  it('SIGINT to `npx config-store watch` ends the watch, whose process does not outlive npx', async () => {
    const run = launch('npx', ['config-store', 'watch'], { CONFIG_FILES_DIR: tempDir() })
    await until(() => /Ctrl-C ends/.test(run.out.stderr) || run.child.exitCode !== null, 15_000, 50)
    const [watcher] = nodesBelow(run.child, /config-store watch/)
    expect(watcher).toBeDefined()
    run.child.kill('SIGINT')
    await run.exited
    await until(() => !alive(watcher as number), 10_000, 50)
  })
})

describe('stopWithLauncher', () => {
  it('a process npm launched gets SIGTERM once the shell between them dies of a signal', async () => {
    // `; true` keeps dash from exec-ing node in its place, as it does not under npm.
    const script = `import { stopWithLauncher } from './src/cli/launcher.ts'
      process.on('SIGTERM', () => { process.stdout.write('stopped gracefully'); process.exit(0) })
      stopWithLauncher(); process.stdout.write('started'); setInterval(() => {}, 1000)`
    const run = launch('/bin/sh', ['-c', `node --import tsx --input-type=module -e "${script}"; true`], {
      npm_command: 'exec',
    })
    await until(() => run.out.stdout === 'started', 10_000, 20)
    const [node] = nodesBelow(run.child, /--import tsx/)
    run.child.kill('SIGTERM') // the shell dies; node is left to init
    await run.exited
    await until(() => run.out.stdout.endsWith('stopped gracefully'), 5000, 20)
    await until(() => !alive(node as number), 5000, 20)
  })
})

describe('an older Node', () => {
  it('gets one warning line saying what the risk is; 22 and newer get none', () => {
    expect(nodeVersionWarning('v20.20.2')).toMatch(
      /^warning: Node v20\.20\.2 is not supported \(22 or newer; CI tests 24\): it is past its end of life and gets no security fixes/,
    )
    expect(nodeVersionWarning('v18.0.0')).toBeDefined()
    for (const v of ['v22.0.0', 'v24.22.3', 'v26.1.0']) expect(nodeVersionWarning(v)).toBeUndefined()
  })
})
