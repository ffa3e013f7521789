// A real redis-server on a free loopback port, in its own temp directory, for the tests and the benchmark (never
// the machine's own).
import { type ChildProcess, spawn, spawnSync } from 'node:child_process'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Redis } from 'ioredis'

export const INSTALL_HINT =
  'redis-server not found on PATH: install it (Debian: apt-get install -y redis-server) and run the tests again'

export interface RedisServer {
  port: number
  url: string
  /** Shuts the server down (its append-only file keeps what it acknowledged). */
  stop(): Promise<void>
  /** Starts it again on the same port and directory. */
  start(): Promise<void>
  /** SIGKILL: gone at once, without a shutdown (a crash). */
  kill(): Promise<void>
  /** SIGSTOP, SIGCONT: the process stops answering, with its connections open (a stalled node), and goes on. */
  pause(): void
  resume(): void
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

  async function stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    const proc = child
    if (proc === undefined || proc.exitCode !== null) return
    child = undefined
    await new Promise<void>((resolve) => {
      proc.once('exit', () => resolve())
      proc.kill(signal)
    })
  }

  await start()
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    stop: () => stop(),
    start,
    kill: () => stop('SIGKILL'),
    pause: () => child?.kill('SIGSTOP'),
    resume: () => child?.kill('SIGCONT'),
  }
}

export interface SentinelTopology {
  /** The master group the Sentinels monitor. */
  name: string
  /** The data nodes, the first started as master (a failover moves the role). */
  nodes: RedisServer[]
  /** REDIS_SENTINELS for them: `127.0.0.1:port,…`. */
  sentinels: string
  sentinelPorts: number[]
  stop(): Promise<void>
}

/** 1 master, `replicas` replicas and `sentinels` Sentinels (quorum: a majority) on loopback, each in its own temp
 * directory; resolves when every Sentinel knows every replica and the other Sentinels, so a failover can proceed. */
export async function startSentinelTopology({
  replicas = 2,
  sentinels = 3,
  name = 'configstore',
} = {}): Promise<SentinelTopology> {
  // No delay before the initial sync (Redis waits 5 s by default, to serve several replicas with one transfer).
  const fast = ['--repl-diskless-sync-delay', '0']
  const master = await startRedisServer({ persist: false, args: fast })
  const nodes = [master]
  for (let i = 0; i < replicas; i++)
    nodes.push(
      await startRedisServer({ persist: false, args: [...fast, '--replicaof', '127.0.0.1', String(master.port)] }),
    )
  const children: ChildProcess[] = []
  const sentinelPorts: number[] = []
  for (let i = 0; i < sentinels; i++) {
    const port = await freePort()
    const dir = mkdtempSync(join(tmpdir(), 'config-store-sentinel-'))
    const conf = join(dir, 'sentinel.conf')
    writeFileSync(
      conf,
      [
        `port ${port}`,
        'bind 127.0.0.1',
        `dir ${dir}`,
        `sentinel monitor ${name} 127.0.0.1 ${master.port} ${Math.floor(sentinels / 2) + 1}`,
        `sentinel down-after-milliseconds ${name} 1000`,
        `sentinel failover-timeout ${name} 10000`,
        `sentinel parallel-syncs ${name} 1`,
        '',
      ].join('\n'),
    )
    const child = spawn('redis-server', [conf, '--sentinel'], { stdio: 'ignore' })
    children.push(child)
    sentinelPorts.push(port)
  }
  const deadline = Date.now() + 30_000
  // A replica that has not finished its first sync holds nothing: promoted, it would be an empty master.
  for (const node of nodes.slice(1)) {
    const replica = new Redis({ port: node.port })
    try {
      while (!(await replica.info('replication')).includes('master_link_status:up')) {
        if (Date.now() > deadline) throw new Error(`the replica on ${node.port} did not sync within 30 s`)
        await new Promise((r) => setTimeout(r, 50))
      }
    } finally {
      replica.disconnect()
    }
  }
  for (const port of sentinelPorts) {
    const sentinel = new Redis({ port, lazyConnect: true, retryStrategy: () => 50 })
    try {
      for (;;) {
        const info = (await sentinel.call('SENTINEL', 'MASTER', name).catch(() => [])) as string[]
        const field = (f: string) => Number(info[info.indexOf(f) + 1])
        if (field('num-slaves') === replicas && field('num-other-sentinels') === sentinels - 1) break
        if (Date.now() > deadline) throw new Error(`Sentinel on ${port} did not see the whole topology within 30 s`)
        await new Promise((r) => setTimeout(r, 100))
      }
    } finally {
      sentinel.disconnect()
    }
  }
  return {
    name,
    nodes,
    sentinels: sentinelPorts.map((p) => `127.0.0.1:${p}`).join(','),
    sentinelPorts,
    async stop() {
      for (const child of children) child.kill('SIGKILL')
      await Promise.all(nodes.map((n) => n.stop()))
    },
  }
}

export interface ClusterTopology {
  /** Every node, masters first as `redis-cli --cluster create` was given them (a failover moves the roles). */
  nodes: RedisServer[]
  /** REDIS_CLUSTER_NODES for them: `127.0.0.1:port,…`. */
  addresses: string
  stop(): Promise<void>
}

/** A Redis Cluster on loopback: `masters` masters with `replicas` replicas each, made by `redis-cli --cluster create`;
 * resolves when every node sees the cluster whole (state ok, every slot served) and every replica has synced. */
export async function startClusterTopology({ masters = 3, replicas = 1 } = {}): Promise<ClusterTopology> {
  const nodes: RedisServer[] = []
  for (let i = 0; i < masters * (1 + replicas); i++) {
    // The cluster bus on a free port of its own (by default port + 10000, which may be taken or past 65535).
    const bus = await freePort()
    const args = ['--cluster-enabled', 'yes', '--cluster-port', String(bus), '--cluster-node-timeout', '1000']
    nodes.push(await startRedisServer({ persist: false, args: [...args, '--repl-diskless-sync-delay', '0'] }))
  }
  const create = spawnSync(
    'redis-cli',
    ['--cluster', 'create', ...nodes.map((n) => `127.0.0.1:${n.port}`), '--cluster-replicas', String(replicas)],
    { input: 'yes\n', encoding: 'utf8', env: { ...process.env, REDISCLI_CLUSTER_YES: '1' } },
  )
  if (create.status !== 0) throw new Error(`redis-cli --cluster create failed: ${create.stdout}${create.stderr}`)
  const deadline = Date.now() + 30_000
  for (const node of nodes) {
    const client = new Redis({ port: node.port })
    try {
      for (;;) {
        const info = await client.cluster('INFO')
        const replication = await client.info('replication')
        const synced = replication.includes('role:master') || replication.includes('master_link_status:up')
        if (info.includes('cluster_state:ok') && info.includes('cluster_slots_ok:16384') && synced) break
        if (Date.now() > deadline) throw new Error(`cluster node ${node.port} not ready within 30 s: ${info}`)
        await new Promise((r) => setTimeout(r, 100))
      }
    } finally {
      client.disconnect()
    }
  }
  return {
    nodes,
    addresses: nodes.map((n) => `127.0.0.1:${n.port}`).join(','),
    async stop() {
      await Promise.all(nodes.map((n) => n.stop()))
    },
  }
}
