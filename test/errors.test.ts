// The error table is the one truth about errors: every class carries a code of it, the README documents exactly its
// codes with their HTTP and exit status, and the command line's exit status and last line come from it.
import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import {
  AppError,
  ConfigError,
  ErrorCodes,
  exitCodeOf,
  fatalLine,
  LayerUnavailableError,
  UsageError,
} from '../src/errors.js'

/** The rows of the README's error table: code → [HTTP, exit]. */
function readmeTable(): Map<string, [number, number]> {
  const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8')
  const start = readme.indexOf('| code | HTTP | exit | when |')
  expect(start).toBeGreaterThan(0)
  const rows = new Map<string, [number, number]>()
  for (const line of readme.slice(start).split('\n').slice(2)) {
    const cells = /^\| `([A-Z_]+)` \| (\d+) \| (\d+) \|/.exec(line)
    if (cells === null) break
    rows.set(cells[1] as string, [Number(cells[2]), Number(cells[3])])
  }
  return rows
}

describe('the error table', () => {
  it('README.md lists exactly the codes of src/errors.ts, with their HTTP and exit status', () => {
    const documented = readmeTable()
    expect([...documented.keys()].sort()).toEqual(Object.keys(ErrorCodes).sort())
    for (const [code, { status, exit }] of Object.entries(ErrorCodes))
      expect(documented.get(code), code).toEqual([status, exit])
  })

  it('every error class carries a code of the table, and its exit status follows from it', () => {
    const errors = [
      new AppError('QUOTA_EXCEEDED', 'full'),
      new ConfigError('PORT: must be an integer'),
      new UsageError('expected 1 argument(s), got 0'),
      new LayerUnavailableError('redis', 'ECONNREFUSED'),
    ]
    expect(errors.map((e) => [e.code, e.statusCode, exitCodeOf(e)])).toEqual([
      ['QUOTA_EXCEEDED', 409, 1],
      ['INVALID_CONFIG', 500, 1],
      ['USAGE', 400, 2],
      ['STORE_UNAVAILABLE', 503, 1],
    ])
    expect(exitCodeOf(new AppError('MIGRATION_IN_PROGRESS', 'held'))).toBe(3)
    expect(exitCodeOf(new TypeError('a bug'))).toBe(1)
  })

  it('one fatal line: configuration errors say so, the project’s own are their message, others say what failed', () => {
    expect(fatalLine(new ConfigError('PORT: bad'))).toBe('config-store: invalid configuration: PORT: bad\n')
    expect(fatalLine(new UsageError('no such flag'), 'failed to start')).toBe('config-store: no such flag\n')
    expect(fatalLine(new Error('EADDRINUSE'), 'failed to start')).toBe('config-store: failed to start: EADDRINUSE\n')
    expect(fatalLine('thrown text')).toBe('config-store: thrown text\n')
  })
})
