// A real redis-server on a free loopback port, in its own temp directory, for the tests and the benchmark (never
// the machine's own).
import { type ChildProcess, spawn, spawnSync } from 'node:child_process'
import { mkdtempSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

export const INSTALL_HINT =
  'redis-server not found on PATH: install it (Debian: apt-get install -y redis-server) and run the tests again'

export interface RedisServer {
  port: number
  url: string
  /** Shuts the server down (its append-only file keeps what it acknowledged). */
  stop(): Promise<void>
  /** Starts it again on the same port and directory. */
  start(): Promise<void>
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number }
      server.close(() => resolve(port))
    })
  })
}

/** `persist`: an append-only file fsynced on every write, so a stop and start loses nothing acknowledged (tests);
 * off for the benchmark, which measures this service, not the disk. */
export async function startRedisServer({ persist = true, args: extra = [] as string[] } = {}): Promise<RedisServer> {
  if (spawnSync('redis-server', ['--version']).error) throw new Error(INSTALL_HINT)
  const port = await freePort()
  const dir = mkdtempSync(join(tmpdir(), 'config-store-redis-'))
  let child: ChildProcess | undefined

  async function start(): Promise<void> {
    const args = ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '']
    const aof = persist ? ['--appendonly', 'yes', '--appendfsync', 'always'] : ['--appendonly', 'no']
    child = spawn('redis-server', [...args, ...aof, ...extra], { stdio: 'pipe' })
    const proc = child
    await new Promise<void>((resolve, reject) => {
      let out = ''
      proc.stdout?.on('data', (chunk: Buffer) => {
        out += chunk.toString()
        if (out.includes('Ready to accept connections')) resolve()
      })
      proc.once('exit', (code) => reject(new Error(`redis-server exited with ${code}: ${out.slice(-500)}`)))
    })
  }

  async function stop(): Promise<void> {
    const proc = child
    if (proc === undefined || proc.exitCode !== null) return
    child = undefined
    await new Promise<void>((resolve) => {
      proc.once('exit', () => resolve())
      proc.kill('SIGTERM')
    })
  }

  await start()
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    stop,
    start,
  }
}
