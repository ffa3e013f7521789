// The envelope's `timestamp`, formatted once per millisecond rather than once per response: a measurable part of a
// cached read's cost at tens of thousands of requests a second.
let lastMs = 0
let lastIso = ''

export function now(): string {
  const ms = Date.now()
  if (ms !== lastMs) {
    lastMs = ms
    lastIso = new Date(ms).toISOString()
  }
  return lastIso
}
