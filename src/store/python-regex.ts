// Routing-rule regexes are compiled by the legacy app with Python's `re` (CPython 3.11, its image's), not by
// JavaScript: one pattern `re.compile` refuses makes the legacy RoutingRulesService drop every rule (docs/keys.md
// "The regex dialect"). This is a port of the checks of CPython 3.11's `re._parser` (and the look-behind width
// check of `re._compiler`): it answers whether `re.compile` accepts a pattern, with Python's own message when it
// does not, and the pattern's quantifier nesting for the ReDoS guard. It builds no matcher.

const MAXREPEAT = 4294967295
const MAXWIDTH = 2 ** 64
const MAXGROUPS = 2 ** 30
const SPECIAL = new Set('.\\[{()*+?^$|')
const WHITESPACE = new Set(' \t\n\r\v\f')
const DIGITS = /^[0-9]$/
const OCTDIGITS = new Set('01234567')
const HEXDIGITS = new Set('0123456789abcdefABCDEF')
const ASCII_LETTERS = /^[A-Za-z]$/
/** `\X` escapes that are zero-width assertions (AT codes: a quantifier cannot follow them). */
const AT_ESCAPES = new Set(['\\A', '\\Z', '\\b', '\\B'])
const CLASS_ESCAPES = new Set(['\\d', '\\D', '\\s', '\\S', '\\w', '\\W'])
const CHAR_ESCAPES: Record<string, number> = {
  '\\a': 7,
  '\\b': 8,
  '\\f': 12,
  '\\n': 10,
  '\\r': 13,
  '\\t': 9,
  '\\v': 11,
}
CHAR_ESCAPES['\\\\'] = 92
const FLAGS: Record<string, number> = { i: 2, L: 4, m: 8, s: 16, x: 64, a: 256, t: 1, u: 32 }
const VERBOSE = 64
const TYPE_FLAGS = 256 | 4 | 32
const GLOBAL_FLAGS = 1 // TEMPLATE (DEBUG cannot be set inline)
/** Python's str.isidentifier, as near as JavaScript's Unicode properties come. */
const IDENTIFIER = /^[\p{ID_Start}_][\p{ID_Continue}]*$/u

export type PythonRegexCheck =
  | {
      ok: true /** the deepest nesting of quantifiers */
      starHeight: number /** how many there are */
      quantifiers: number
    }
  | { ok: false; message: string }

class PyReError extends Error {}

type Width = [number, number]
interface Item {
  kind: 'unit' | 'at' | 'repeat' | 'group' | 'assert' | 'groupref' | 'cond'
  width: Width
  height: number
}

const add = (a: Width, b: Width): Width => [Math.min(a[0] + b[0], MAXWIDTH), Math.min(a[1] + b[1], MAXWIDTH)]

/** Tokens as `re._parser.Tokenizer` gives them: one code point, or a backslash and the next. */
class Source {
  private readonly chars: string[]
  private index = 0
  next: string | undefined
  constructor(pattern: string) {
    this.chars = Array.from(pattern)
    this.advance()
  }
  private advance(): void {
    const c = this.chars[this.index]
    if (c === undefined) {
      this.next = undefined
      return
    }
    if (c === '\\') {
      const n = this.chars[this.index + 1]
      if (n === undefined) throw this.errorAt('bad escape (end of pattern)', this.chars.length - 1)
      this.index += 2
      this.next = c + n
      return
    }
    this.index += 1
    this.next = c
  }
  match(char: string): boolean {
    if (this.next !== char) return false
    this.advance()
    return true
  }
  get(): string | undefined {
    const t = this.next
    this.advance()
    return t
  }
  getwhile(n: number, set: Set<string>): string {
    let out = ''
    for (let i = 0; i < n && this.next !== undefined && set.has(this.next); i++) out += this.get()
    return out
  }
  getuntil(terminator: string, name: string): string {
    let out = ''
    for (;;) {
      const c = this.get()
      if (c === undefined)
        throw out ? this.error(`missing ${terminator}, unterminated name`, out.length) : this.error(`missing ${name}`)
      if (c === terminator) {
        if (!out) throw this.error(`missing ${name}`, 1)
        return out
      }
      out += c
    }
  }
  tell(): number {
    return this.index - (this.next?.length ?? 0)
  }
  seek(index: number): void {
    this.index = index
    this.advance()
  }
  /** Python's `source.error(msg, offset)`: the position is `offset` characters before the current one. */
  error(message: string, offset = 0): PyReError {
    return this.errorAt(message, this.tell() - offset)
  }
  errorAt(message: string, position: number): PyReError {
    return new PyReError(`${message} at position ${position}`)
  }
}

class State {
  flags = 0
  groups = 1
  readonly names = new Map<string, number>()
  readonly widths: Array<Width | undefined> = [[0, 0]]
  lookbehindGroups: number | undefined
  readonly groupRefs = new Map<number, number>()
  quantifiers = 0
  readonly lookbehinds: Width[] = []
  open(name: string | undefined, source: Source): number {
    const gid = this.groups++
    const offset = (name?.length ?? 0) + 1
    if (gid >= MAXGROUPS) throw source.error('too many groups', offset)
    if (name !== undefined) {
      const was = this.names.get(name)
      if (was !== undefined)
        throw source.error(`redefinition of group name '${name}' as group ${gid}; was group ${was}`, offset)
      this.names.set(name, gid)
    }
    this.widths[gid] = undefined
    return gid
  }
  closed(gid: number): boolean {
    return gid < this.groups && this.widths[gid] !== undefined
  }
  checkLookbehindGroup(gid: number, source: Source): void {
    if (this.lookbehindGroups === undefined) return
    if (!this.closed(gid)) throw source.error('cannot refer to an open group')
    if (gid >= this.lookbehindGroups)
      throw source.error('cannot refer to group defined in the same lookbehind subpattern')
  }
}

function checkGroupName(name: string, source: Source): void {
  if (!IDENTIFIER.test(name)) throw source.error(`bad character in group name '${name}'`, name.length + 1)
}

const unit = (): Item => ({ kind: 'unit', width: [1, 1], height: 0 })

/** A code point of `\x`, `\u`, `\U` and octal escapes, or undefined for the other escapes. */
function numericEscape(source: Source, esc: string): number | undefined {
  const c = esc[1] as string
  const hex = (n: number) => {
    const digits = source.getwhile(n, HEXDIGITS)
    if (digits.length !== n) throw source.error(`incomplete escape ${esc}${digits}`, esc.length + digits.length)
    return digits
  }
  if (c === 'x') return Number.parseInt(hex(2), 16)
  if (c === 'u') return Number.parseInt(hex(4), 16)
  if (c === 'U') {
    const digits = hex(8)
    if (Number.parseInt(digits, 16) > 0x10ffff) throw source.error(`bad escape ${esc}${digits}`, esc.length + 8)
    return Number.parseInt(digits, 16)
  }
  if (c === 'N') {
    // The Unicode name table is not here: \N{…} is refused rather than accepted unchecked.
    throw source.error('\\N{…} (a character by its Unicode name) is not accepted here; write the character itself')
  }
  return undefined
}

/** `re._parser._class_escape`: an esc inside [ ]; a literal's code point, or 'class' for \d and the others. */
function classEscape(source: Source, esc: string): number | 'class' {
  if (Object.hasOwn(CHAR_ESCAPES, esc)) return CHAR_ESCAPES[esc] as number
  if (CLASS_ESCAPES.has(esc)) return 'class'
  const numeric = numericEscape(source, esc)
  if (numeric !== undefined) return numeric
  const c = esc[1] as string
  if (OCTDIGITS.has(c)) {
    const full = esc + source.getwhile(2, OCTDIGITS)
    const value = Number.parseInt(full.slice(1), 8)
    if (value > 0o377) throw source.error(`octal escape value ${full} outside of range 0-0o377`, full.length)
    return value
  }
  if (DIGITS.test(c) || ASCII_LETTERS.test(c)) throw source.error(`bad escape ${esc}`, esc.length)
  return c.codePointAt(0) as number
}

/** `re._parser._escape`: an esc outside [ ]. */
function escapeItem(source: Source, esc: string, state: State): Item {
  if (AT_ESCAPES.has(esc)) return { kind: 'at', width: [0, 0], height: 0 }
  if (CLASS_ESCAPES.has(esc) || Object.hasOwn(CHAR_ESCAPES, esc)) return unit()
  if (numericEscape(source, esc) !== undefined) return unit()
  const c = esc[1] as string
  if (c === '0') {
    source.getwhile(2, OCTDIGITS)
    return unit()
  }
  if (DIGITS.test(c)) {
    let full = esc
    if (source.next !== undefined && DIGITS.test(source.next)) {
      full += source.get()
      if (OCTDIGITS.has(full[1] as string) && OCTDIGITS.has(full[2] as string) && OCTDIGITS.has(source.next ?? '')) {
        full += source.get()
        if (Number.parseInt(full.slice(1), 8) > 0o377)
          throw source.error(`octal escape value ${full} outside of range 0-0o377`, full.length)
        return unit()
      }
    }
    const gid = Number(full.slice(1))
    if (gid < state.groups) {
      if (!state.closed(gid)) throw source.error('cannot refer to an open group', full.length)
      state.checkLookbehindGroup(gid, source)
      return { kind: 'groupref', width: state.widths[gid] as Width, height: 0 }
    }
    throw source.error(`invalid group reference ${gid}`, full.length - 1)
  }
  if (ASCII_LETTERS.test(c)) throw source.error(`bad escape ${esc}`, esc.length)
  return unit()
}

function parseClass(source: Source, start: number): Item {
  source.match('^')
  let items = 0
  for (;;) {
    const t = source.get()
    if (t === undefined) throw source.errorAt('unterminated character set', start)
    if (t === ']' && items > 0) break
    const first = t.startsWith('\\') ? classEscape(source, t) : (t.codePointAt(0) as number)
    items++
    if (!source.match('-')) continue
    const that = source.get()
    if (that === undefined) throw source.errorAt('unterminated character set', start)
    if (that === ']') break
    const second = that.startsWith('\\') ? classEscape(source, that) : (that.codePointAt(0) as number)
    if (first === 'class' || second === 'class' || second < first)
      throw source.error(`bad character range ${t}-${that}`, t.length + 1 + that.length)
  }
  return unit()
}

/** `{m,n}` at the source (after its `{`): the bounds, or undefined when it is a literal `{`. */
function braces(source: Source): [number, number] | undefined {
  const here = source.tell()
  if (source.next === '}') return undefined
  let lo = ''
  let hi = ''
  while (source.next !== undefined && DIGITS.test(source.next)) lo += source.get()
  if (source.match(',')) while (source.next !== undefined && DIGITS.test(source.next)) hi += source.get()
  else hi = lo
  if (!source.match('}')) {
    source.seek(here)
    return undefined
  }
  const min = lo ? Number(lo) : 0
  const max = hi ? Number(hi) : MAXREPEAT
  if ((lo && min >= MAXREPEAT) || (hi && max >= MAXREPEAT)) throw new PyReError('the repetition number is too large')
  if (hi && max < min) throw source.errorAt('min repeat greater than max repeat', here)
  return [min, max]
}

function parseFlags(source: Source, state: State, first: string): [number, number] | undefined {
  let char: string | undefined = first
  let on = 0
  let off = 0
  if (char !== '-') {
    for (;;) {
      const flag = FLAGS[char as string] as number
      if (char === 'L') throw source.error("bad inline flags: cannot use 'L' flag with a str pattern")
      // TEMPLATE (deprecated) compiles only patterns without repeats or branches: refused whole.
      if (char === 't') throw source.error('the t (TEMPLATE) flag is not accepted here')
      on |= flag
      if (flag & TYPE_FLAGS && (on & TYPE_FLAGS) !== flag)
        throw source.error("bad inline flags: flags 'a', 'u' and 'L' are incompatible")
      char = source.get()
      if (char === undefined) throw source.error('missing -, : or )')
      if (')-:'.includes(char)) break
      if (!Object.hasOwn(FLAGS, char))
        throw source.error(/^\p{L}$/u.test(char) ? 'unknown flag' : 'missing -, : or )', char.length)
    }
  }
  if (char === ')') {
    state.flags |= on
    return undefined
  }
  if (on & GLOBAL_FLAGS) throw source.error('bad inline flags: cannot turn on global flag', 1)
  if (char === '-') {
    char = source.get()
    if (char === undefined) throw source.error('missing flag')
    if (!Object.hasOwn(FLAGS, char))
      throw source.error(/^\p{L}$/u.test(char) ? 'unknown flag' : 'missing flag', char.length)
    for (;;) {
      const flag = FLAGS[char as string] as number
      if (flag & TYPE_FLAGS) throw source.error("bad inline flags: cannot turn off flags 'a', 'u' and 'L'")
      off |= flag
      char = source.get()
      if (char === undefined) throw source.error('missing :')
      if (char === ':') break
      if (!Object.hasOwn(FLAGS, char))
        throw source.error(/^\p{L}$/u.test(char) ? 'unknown flag' : 'missing :', char.length)
    }
  }
  if (off & GLOBAL_FLAGS) throw source.error('bad inline flags: cannot turn off global flag', 1)
  if (on & off) throw source.error('bad inline flags: flag turned on and off', 1)
  return [on, off]
}

/** `re._parser._parse_sub`: alternatives; their width is the narrowest and widest of them. */
function parseAlternatives(source: Source, state: State, verbose: boolean, nested: number): Item {
  const items: Item[] = []
  for (;;) {
    items.push(parseSequence(source, state, verbose, nested + 1, nested === 0 && items.length === 0))
    if (!source.match('|')) break
    if (nested === 0) verbose = (state.flags & VERBOSE) !== 0
  }
  const width: Width = [Math.min(...items.map((i) => i.width[0])), Math.max(...items.map((i) => i.width[1]))]
  return { kind: 'group', width, height: Math.max(...items.map((i) => i.height)) }
}

/** `re._parser._parse`: one alternative, up to `|` or `)`. */
function parseSequence(source: Source, state: State, verbose: boolean, nested: number, first: boolean): Item {
  const items: Item[] = []
  for (;;) {
    const t = source.next
    if (t === undefined || t === '|' || t === ')') break
    const start = source.tell()
    source.get()
    if (verbose && WHITESPACE.has(t)) continue
    if (verbose && t === '#') {
      for (let c = source.get(); c !== undefined && c !== '\n'; c = source.get());
      continue
    }
    if (t.startsWith('\\')) items.push(escapeItem(source, t, state))
    else if (!SPECIAL.has(t) || t === '.') items.push(unit())
    else if (t === '[') items.push(parseClass(source, start))
    else if ('*+?{'.includes(t)) {
      let bounds: [number, number] = t === '*' ? [0, MAXREPEAT] : t === '+' ? [1, MAXREPEAT] : [0, 1]
      if (t === '{') {
        const b = braces(source)
        if (b === undefined) {
          items.push(unit())
          continue
        }
        bounds = b
      }
      const item = items.at(-1)
      if (item === undefined || item.kind === 'at') throw source.errorAt('nothing to repeat', start)
      if (item.kind === 'repeat') throw source.errorAt('multiple repeat', start)
      if (!source.match('?')) source.match('+')
      state.quantifiers++
      const [min, max] = bounds
      const hi = max === MAXREPEAT && item.width[1] > 0 ? MAXWIDTH : Math.min(item.width[1] * max, MAXWIDTH)
      items[items.length - 1] = { kind: 'repeat', width: [item.width[0] * min, hi], height: item.height + 1 }
    } else if (t === '(') {
      const group = parseGroup(source, state, verbose, nested, first && items.length === 0, start)
      if (group === 'global flags') verbose = (state.flags & VERBOSE) !== 0
      else if (group !== undefined) items.push(group)
    } else items.push({ kind: 'at', width: [0, 0], height: 0 }) // ^ $
  }
  const width = items.reduce<Width>((w, i) => add(w, i.width), [0, 0])
  return { kind: 'group', width, height: Math.max(0, ...items.map((i) => i.height)) }
}

/** A group after its `(`: its item, undefined for a comment, 'global flags' for `(?i)` at the start. */
function parseGroup(
  source: Source,
  state: State,
  verbose: boolean,
  nested: number,
  first: boolean,
  start: number,
): Item | 'global flags' | undefined {
  let capture = true
  let name: string | undefined
  let flags: [number, number] = [0, 0]
  if (source.match('?')) {
    const char = source.get()
    if (char === undefined) throw source.error('unexpected end of pattern')
    if (char === 'P') {
      if (source.match('<')) {
        name = source.getuntil('>', 'group name')
        checkGroupName(name, source)
      } else if (source.match('=')) {
        const ref = source.getuntil(')', 'group name')
        checkGroupName(ref, source)
        const gid = state.names.get(ref)
        if (gid === undefined) throw source.error(`unknown group name '${ref}'`, ref.length + 1)
        if (!state.closed(gid)) throw source.error('cannot refer to an open group', ref.length + 1)
        state.checkLookbehindGroup(gid, source)
        return { kind: 'groupref', width: state.widths[gid] as Width, height: 0 }
      } else {
        const next = source.get()
        if (next === undefined) throw source.error('unexpected end of pattern')
        throw source.error(`unknown extension ?P${next}`, next.length + 2)
      }
    } else if (char === ':') capture = false
    else if (char === '#') {
      for (;;) {
        if (source.next === undefined) throw source.errorAt('missing ), unterminated comment', start)
        if (source.get() === ')') return undefined
      }
    } else if ('=!<'.includes(char)) {
      let behind = false
      if (char === '<') {
        const kind = source.get()
        if (kind === undefined) throw source.error('unexpected end of pattern')
        if (!'=!'.includes(kind)) throw source.error(`unknown extension ?<${kind}`, kind.length + 2)
        behind = true
      }
      const outer = state.lookbehindGroups
      if (behind && outer === undefined) state.lookbehindGroups = state.groups
      const p = parseAlternatives(source, state, verbose, nested + 1)
      if (behind && outer === undefined) state.lookbehindGroups = undefined
      if (!source.match(')')) throw source.errorAt('missing ), unterminated subpattern', start)
      if (behind) state.lookbehinds.push(p.width) // checked by the compiler, after the whole parse
      return { kind: 'assert', width: [0, 0], height: p.height }
    } else if (char === '(') {
      return conditional(source, state, verbose, nested, start)
    } else if (char === '>') capture = false
    else if (Object.hasOwn(FLAGS, char) || char === '-') {
      const scoped = parseFlags(source, state, char)
      if (scoped === undefined) {
        if (!first) throw source.errorAt('global flags not at the start of the expression', start)
        return 'global flags'
      }
      flags = scoped
      capture = false
    } else throw source.error(`unknown extension ?${char}`, char.length + 1)
  }
  const gid = capture ? state.open(name, source) : undefined
  const subVerbose = (verbose || (flags[0] & VERBOSE) !== 0) && (flags[1] & VERBOSE) === 0
  const p = parseAlternatives(source, state, subVerbose, nested + 1)
  if (!source.match(')')) throw source.errorAt('missing ), unterminated subpattern', start)
  if (gid !== undefined) state.widths[gid] = p.width
  return { kind: 'group', width: p.width, height: p.height }
}

/** `(?(id/name)yes|no)`, after its `(?(`. */
function conditional(source: Source, state: State, verbose: boolean, nested: number, start: number): Item {
  const cond = source.getuntil(')', 'group name')
  let gid: number
  if (IDENTIFIER.test(cond)) {
    const named = state.names.get(cond)
    if (named === undefined) throw source.error(`unknown group name '${cond}'`, cond.length + 1)
    gid = named
  } else {
    // int(cond) in Python; its other forms (signs, spaces, underscores, non-ASCII digits) are refused here.
    if (!/^[0-9]+$/.test(cond)) throw source.error(`bad character in group name '${cond}'`, cond.length + 1)
    gid = Number(cond)
    if (gid === 0) throw source.error('bad group number', cond.length + 1)
    if (gid >= MAXGROUPS) throw source.error(`invalid group reference ${gid}`, cond.length + 1)
    if (!state.groupRefs.has(gid)) state.groupRefs.set(gid, source.tell() - cond.length - 1)
  }
  state.checkLookbehindGroup(gid, source)
  const yes = parseSequence(source, state, verbose, nested + 1, false)
  let no: Item | undefined
  if (source.match('|')) {
    no = parseSequence(source, state, verbose, nested + 1, false)
    if (source.next === '|') throw source.error('conditional backref with more than two branches')
  }
  if (!source.match(')')) throw source.errorAt('missing ), unterminated subpattern', start)
  const width: Width =
    no === undefined ? [0, yes.width[1]] : [Math.min(yes.width[0], no.width[0]), Math.max(yes.width[1], no.width[1])]
  return { kind: 'cond', width, height: Math.max(yes.height, no?.height ?? 0) }
}

/** Whether CPython 3.11's `re.compile(pattern)` accepts `pattern` (a str), and if not, its message. */
export function checkPythonRegex(pattern: string): PythonRegexCheck {
  try {
    const source = new Source(pattern)
    const state = new State()
    const p = parseAlternatives(source, state, false, 0)
    if (state.flags & 256 && state.flags & 32) throw new PyReError('ASCII and UNICODE flags are incompatible')
    if (source.next !== undefined) throw source.error('unbalanced parenthesis')
    for (const [gid, at] of state.groupRefs)
      if (gid >= state.groups) throw new PyReError(`invalid group reference ${gid} at position ${at}`)
    if (state.lookbehinds.some(([lo, hi]) => lo !== hi)) throw new PyReError('look-behind requires fixed-width pattern')
    return { ok: true, starHeight: p.height, quantifiers: state.quantifiers }
  } catch (err) {
    if (err instanceof PyReError) return { ok: false, message: err.message }
    throw err
  }
}
