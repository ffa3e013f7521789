// Entity tags (RFC 9110 §8.8.3): a strong tag derived from the document's compact JSON text, so every instance, and
// every layer holding the same document, gives the same tag; and the If-Match / If-None-Match checks of a write.
import { hash } from 'node:crypto'
import { AppError } from '../errors.js'

export const etagOf = (json: string): string => `"${hash('sha256', json, 'base64url')}"`

/** The same tag, from the digest in hex (a revision's `after`), without hashing the document again. */
export const etagOfSha = (hex: string): string => `"${Buffer.from(hex, 'hex').toString('base64url')}"`

/** The entity tags of an If-Match or If-None-Match header: `*`, or a list of quoted tags (weak ones marked W/). */
function tagsOf(header: string): string[] {
  return header.split(',').map((t) => t.trim())
}

export interface Preconditions {
  /** The If-Match header: the write applies only to the current document when it has one of these tags (`*`: any). */
  ifMatch?: string | undefined
  /** The If-None-Match header of a write: `*` makes it a create, refused when the key exists. */
  ifNoneMatch?: string | undefined
}

/** Throws PRECONDITION_FAILED unless `preconditions` hold for the current document (its JSON text, or undefined when
 * no layer holds the key). If-Match compares strongly: a weak tag never matches. */
export function checkPreconditions(
  key: string,
  currentJson: string | undefined,
  { ifMatch, ifNoneMatch }: Preconditions,
) {
  const current = currentJson === undefined ? undefined : etagOf(currentJson)
  if (ifMatch !== undefined) {
    const tags = tagsOf(ifMatch)
    const holds = current !== undefined && (tags.includes('*') || tags.includes(current))
    if (!holds)
      throw new AppError(
        'PRECONDITION_FAILED',
        current === undefined
          ? `If-Match: no layer holds ${key}; nothing was written`
          : `If-Match: ${key} has changed (its ETag is now ${current}); nothing was written`,
      )
  }
  if (ifNoneMatch !== undefined && current !== undefined) {
    const tags = tagsOf(ifNoneMatch).map((t) => t.replace(/^W\//, ''))
    if (tags.includes('*') || tags.includes(current))
      throw new AppError('PRECONDITION_FAILED', `If-None-Match: ${key} exists (ETag ${current}); nothing was written`)
  }
}

/** Whether a GET's If-None-Match names the current tag (weak comparison), so that the answer is a 304. */
export function notModified(header: string | undefined, current: string): boolean {
  if (header === undefined) return false
  return tagsOf(header).some((t) => t === '*' || t.replace(/^W\//, '') === current)
}
