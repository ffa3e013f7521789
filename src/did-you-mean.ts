// Names close to a mistyped one: for an environment variable the service does not know, a key no layer holds, and a
// new key whose name is one or two edits from a key that exists.

/** Levenshtein distance: insertions, deletions and substitutions. */
export function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, i) => i)
  for (let i = 1; i <= a.length; i++) {
    const row = [i]
    for (let j = 1; j <= b.length; j++)
      row[j] = Math.min(
        (previous[j] as number) + 1,
        (row[j - 1] as number) + 1,
        (previous[j - 1] as number) + (a[i - 1] === b[j - 1] ? 0 : 1),
      )
    previous = row
  }
  return previous[b.length] as number
}

/** The candidate nearest to `name`, however far. */
export function closest(name: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined
  let bestDistance = Number.POSITIVE_INFINITY
  for (const c of candidates) {
    const d = editDistance(name, c)
    if (d < bestDistance) [best, bestDistance] = [c, d]
  }
  return best
}

/** How many edits still read as a typo: two, and one for names of four characters or fewer (`a` is not `b`'s typo). */
const typoDistance = (name: string) => (name.length <= 4 ? 1 : 2)

/** The candidates (other than `name`) a typo away from it, nearest first. */
export function nearNames(name: string, candidates: Iterable<string>): string[] {
  const near: Array<[string, number]> = []
  for (const c of candidates) {
    if (c === name || Math.abs(c.length - name.length) > typoDistance(name)) continue
    const d = editDistance(name, c)
    if (d <= typoDistance(name)) near.push([c, d])
  }
  return near.sort((x, y) => x[1] - y[1] || x[0].localeCompare(y[0])).map(([c]) => c)
}

/** A new key's warning, when its name is a typo away from a key that exists or has a schema. */
export const typoWarning = (key: string, near: string) =>
  `${key} is a new key, a typo away from ${near}: if ${near} was meant, write it and delete ${key}`
