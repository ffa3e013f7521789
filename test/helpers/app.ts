// Builds the app for route tests exactly as the server does (same builder, same config loader), on a temp files
// directory, a test-owned Redis prefix and static tokens of each scope. Log lines are kept, parsed.
import { randomBytes } from 'node:crypto'
import { mkdtempSync, readdirSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import { Redis } from 'ioredis'
import { afterAll, afterEach, inject } from 'vitest'
import { buildApp } from '../../src/app.js'
import { loadConfig } from '../../src/config.js'
import { createLogger } from '../../src/logger.js'

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

export function tempDir(name = 'files'): string {
  return mkdtempSync(join(tmpdir(), `config-store-${name}-`))
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
    ...env,
  }
  const config = loadConfig(
    Object.fromEntries(Object.entries(merged).filter(([, v]) => v !== undefined)) as Record<string, string>,
  )
  const { logger, lines, raw } = captureLogger()
  const app = await buildApp({ config, logger })
  await app.ready()
  return { app, config, dir, prefix, logs: lines, rawLogs: raw }
}

/** Apps (or anything closable) a test file builds, closed after each test. */
export function closedAfterEach(): Array<{ close(): Promise<unknown> }> {
  const open: Array<{ close(): Promise<unknown> }> = []
  afterEach(async () => {
    await Promise.all(open.splice(0).map((a) => a.close()))
  })
  return open
}

/** A client of the suite's redis-server for a whole test file (it connects on first use), closed after the last test. */
export function redisClientForFile(): Redis {
  const redis = new Redis(inject('redisUrl'), { lazyConnect: true })
  afterAll(() => redis.disconnect())
  return redis
}
