// Builds the app for route tests exactly as the server does (same builder, same config loader), on a temp files
// directory, a test-owned Redis prefix and static tokens of each scope. Log lines are kept, parsed. An app is closed
// when the test that built it ends (or, built outside a test, when its file ends), and temp directories are removed
// when their file ends, without the test asking.
import { randomBytes } from 'node:crypto'
import { mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import type { FastifyInstance } from 'fastify'
import { Redis } from 'ioredis'
import { afterAll, inject, onTestFinished } from 'vitest'
import { buildApp } from '../../src/app.js'
import { loadConfig } from '../../src/config.js'
import { createLogger } from '../../src/logger.js'
import type { ConfigStore } from '../../src/store/layered-store.js'
import type { Layer, LayerName } from '../../stores/layer.js'

export const TOKENS = {
  read: 'read-token-0123456789',
  write: 'write-token-0123456789',
  admin: 'admin-token-0123456789',
}

export const AUTH_TOKENS = JSON.stringify([
  { name: 'reader', token: TOKENS.read, scopes: ['config:read'] },
  { name: 'writer', token: TOKENS.write, scopes: ['config:write'] },
  { name: 'admin', token: TOKENS.admin, scopes: ['config:admin'] },
])

export const bearer = (scope: keyof typeof TOKENS) => ({ authorization: `Bearer ${TOKENS[scope]}` })

const dirs: string[] = []
const apps = new Set<FastifyInstance>()
afterAll(async () => {
  await Promise.all([...apps].map((app) => app.close()))
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true })
})

/** A temp directory, removed when the test file ends. */
export function tempDir(name = 'files'): string {
  const dir = mkdtempSync(join(tmpdir(), `config-store-${name}-`))
  dirs.push(dir)
  return dir
}

/** Closes `app` when the current test ends, or with the file when there is no current test (a beforeAll). */
export function closeWhenDone(app: FastifyInstance): void {
  apps.add(app)
  app.addHook('onClose', async () => {
    apps.delete(app)
  })
  try {
    onTestFinished(async () => {
      if (apps.has(app)) await app.close()
    })
  } catch {
    // not inside a test: the file's afterAll closes it
  }
}

/** The config files of a files directory (its dot-entries are the service's own: temp files, the .lkg snapshot). */
export function configFiles(dir: string): string[] {
  return readdirSync(dir).filter((name) => !name.startsWith('.'))
}

export function uniquePrefix(): string {
  return `test:${randomBytes(6).toString('hex')}:`
}

export interface LogLine {
  level: number
  msg: string
  [field: string]: unknown
}

export function captureLogger(level = 'info') {
  const lines: LogLine[] = []
  const raw: string[] = []
  const stream = new Writable({
    write(chunk, _enc, done) {
      for (const line of chunk.toString().split('\n').filter(Boolean)) {
        raw.push(line)
        lines.push(JSON.parse(line))
      }
      done()
    },
  })
  return { logger: createLogger(level, stream), lines, raw }
}

/** The app as production builds it, with test defaults that `env` overrides (a value of undefined removes one). */
export async function buildTestApp(env: Record<string, string | undefined> = {}) {
  const dir = tempDir()
  const prefix = uniquePrefix()
  const merged: Record<string, string | undefined> = {
    AUTH_TOKENS,
    CONFIG_FILES_DIR: dir,
    REDIS_URL: inject('redisUrl'),
    CONFIG_STORE_REDIS_PREFIX: prefix,
    CONFIG_WEBHOOK_DNS_SERVERS: inject('dnsServer'),
    ...env,
  }
  const config = loadConfig(
    Object.fromEntries(Object.entries(merged).filter(([, v]) => v !== undefined)) as Record<string, string>,
  )
  const { logger, lines, raw } = captureLogger()
  const app = await buildApp({ config, logger })
  closeWhenDone(app)
  await app.ready()
  return { app, config, dir, prefix, logs: lines, rawLogs: raw }
}

/** A client of the suite's redis-server for a whole test file (it connects on first use), closed after the last test. */
export function redisClientForFile(): Redis {
  const redis = new Redis(inject('redisUrl'), { lazyConnect: true })
  afterAll(() => redis.disconnect())
  return redis
}

/** The store's layer named `name` (a test that asks for it has configured it). */
export function layerOf(store: ConfigStore, name: LayerName): Layer {
  const layer = store.layers().find((l) => l.name === name)
  if (layer === undefined) throw new Error(`the ${name} layer is not configured`)
  return layer
}
