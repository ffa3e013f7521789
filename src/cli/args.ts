// Argument parsing shared by the commands: node:util parseArgs in strict mode, with the positional count checked,
// and every mistake a UsageError (exit 2, one line).
import { readFileSync } from 'node:fs'
import { resolve } from 'node:path'
import { type ParseArgsConfig, parseArgs } from 'node:util'
import { UsageError } from '../errors.js'

export function parse<const T extends NonNullable<ParseArgsConfig['options']>>(
  args: string[],
  options: T,
  minPositionals = 0,
  maxPositionals = minPositionals,
) {
  let parsed: ReturnType<typeof parseArgs<{ args: string[]; options: T; allowPositionals: true; strict: true }>>
  try {
    parsed = parseArgs({ args, options, allowPositionals: true, strict: true })
  } catch (err) {
    throw new UsageError((err as Error).message.split('\n')[0] as string)
  }
  const n = parsed.positionals.length
  if (n < minPositionals || n > maxPositionals)
    throw new UsageError(
      `expected ${minPositionals === maxPositionals ? minPositionals : `${minPositionals} to ${maxPositionals}`} argument(s), got ${n}`,
    )
  return parsed
}

/** `--keys a b c` (the legacy script's form) and `--keys a --keys b` both work. */
export function takeList(args: string[], flag: string): [string[] | undefined, string[]] {
  let list: string[] | undefined
  const rest: string[] = []
  for (let i = 0; i < args.length; i++) {
    if (args[i] !== flag) {
      rest.push(args[i] as string)
      continue
    }
    list ??= []
    while (i + 1 < args.length && !(args[i + 1] as string).startsWith('-')) list.push(args[++i] as string)
  }
  if (list?.length === 0) throw new UsageError(`${flag} needs at least one key`)
  return [list, rest]
}

/** The JSON in `file` (`-`: the text `stdin` gives). */
export function readJson(file: string, stdin: () => string, cwd: string): unknown {
  let text: string
  try {
    text = file === '-' ? stdin() : readFileSync(resolve(cwd, file), 'utf8')
  } catch (err) {
    throw new UsageError(`cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`)
  }
  try {
    return JSON.parse(text)
  } catch {
    throw new UsageError(`${file === '-' ? 'standard input' : file} is not valid JSON`)
  }
}
