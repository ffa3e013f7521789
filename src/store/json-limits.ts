// Limits on the shape of a JSON text, checked on the text itself before it is parsed: a body, or a value read from
// Redis, PHP or a file. A scan without recursion, linear in the length, so a 10,000-level nesting or a 500,000-element
// array is refused for the cost of reading it once, and everything that walks a document afterwards (the forbidden-name
// walk, validation, the merge patch, the serialiser) only ever meets bounded depth and size.

/** Nesting deeper than this is refused. */
export const MAX_DEPTH = 64
/** The default of CONFIG_MAX_NODES: most values (array items plus object members) in one document. */
export const DEFAULT_MAX_NODES = 16_000
/** Values a stored copy may hold beyond CONFIG_MAX_NODES: what the store and PHP add to a document they accepted
 * (`_updated_at`, the reply's envelope), so that everything written can be read back. */
export const STORED_SLACK = 64

const QUOTE = 0x22
const BACKSLASH = 0x5c
const OPEN_OBJECT = 0x7b
const OPEN_ARRAY = 0x5b
const CLOSE_OBJECT = 0x7d
const CLOSE_ARRAY = 0x5d
const COMMA = 0x2c

/** Why `text` is over the limits (nesting deeper than MAX_DEPTH, or more than `maxNodes` values), or undefined.
 * Values are counted as containers plus separators, which is at least the number of array items and object members.
 * The text need not be valid JSON: the parser that runs next reports syntax. */
export function jsonLimitError(text: string, maxNodes: number, extraDepth = 0): string | undefined {
  const maxDepth = MAX_DEPTH + extraDepth
  let depth = 0
  let nodes = 0
  const n = text.length
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i)
    if (c === QUOTE) {
      i = endOfString(text, i)
      continue
    }
    if (c === OPEN_OBJECT || c === OPEN_ARRAY) {
      if (++depth > maxDepth) return `nests deeper than ${MAX_DEPTH} levels`
      nodes++
    } else if (c === CLOSE_OBJECT || c === CLOSE_ARRAY) {
      depth--
    } else if (c === COMMA) {
      nodes++
    } else {
      continue
    }
    if (nodes > maxNodes) return `holds more than ${maxNodes} values (CONFIG_MAX_NODES)`
  }
  return undefined
}

/** The index of the quote that closes the string opened at `start` (or the end of the text). */
function endOfString(text: string, start: number): number {
  let i = start
  for (;;) {
    i = text.indexOf('"', i + 1)
    if (i === -1) return text.length
    let backslashes = 0
    while (text.charCodeAt(i - 1 - backslashes) === BACKSLASH) backslashes++
    if (backslashes % 2 === 0) return i
  }
}
