// The change feed's latency: from a write's acknowledgement at one instance to its SSE event at another, while
// autocannon keeps a write load on the first. Each probe is a POST of its own key, told apart by its revision.
import { request } from 'node:http'
import autocannon from 'autocannon'

export interface FeedLatency {
  probes: number
  received: number
  p50: number
  p99: number
  max: number
  /** Writes per second of the background load meanwhile. */
  loadRps: number
}

/** Listens to `reader`'s feed for `key`, calling `onEvent(revision, at)` for each change event. */
function listen(
  base: string,
  headers: Record<string, string>,
  key: string,
  onEvent: (rev: number, at: number) => void,
) {
  return new Promise<() => void>((resolve, reject) => {
    const req = request(`${base}/api/changes?keys=${key}`, { headers }, (res) => {
      if (res.statusCode !== 200) reject(new Error(`feed answered ${res.statusCode}`))
      res.setEncoding('utf8')
      let buffer = ''
      res.on('data', (chunk: string) => {
        const at = performance.now()
        buffer += chunk
        for (let end = buffer.indexOf('\n\n'); end >= 0; end = buffer.indexOf('\n\n')) {
          const data = /^data: (.*)$/m.exec(buffer.slice(0, end))?.[1]
          buffer = buffer.slice(end + 2)
          if (data !== undefined) onEvent((JSON.parse(data) as { revision: number }).revision, at)
        }
      })
      resolve(() => req.destroy())
    })
    req.on('error', reject)
    req.end()
  })
}

export async function measureFeedLatency(opts: {
  writer: string
  reader: string
  headers: Record<string, string>
  loadPath: string
  loadBody: string
  probes: number
}): Promise<FeedLatency> {
  const { writer, reader, headers } = opts
  const key = 'feed_probe'
  const acked = new Map<number, number>()
  const seen = new Map<number, number>()
  const stop = await listen(reader, headers, key, (rev, at) => seen.set(rev, at))
  const background = autocannon({
    url: writer + opts.loadPath,
    connections: 20,
    duration: 3600,
    method: 'POST',
    headers: { ...headers, 'content-type': 'application/json' },
    body: opts.loadBody,
  })
  await new Promise((r) => setTimeout(r, 500))
  const started = performance.now()
  try {
    for (let i = 0; i < opts.probes; i++) {
      const res = await fetch(`${writer}/api/config/${key}`, {
        method: 'POST',
        headers: { ...headers, 'content-type': 'application/json' },
        body: JSON.stringify({ probe: i }),
      })
      const at = performance.now()
      await res.arrayBuffer()
      const rev = Number(res.headers.get('x-config-revision'))
      if (res.status === 200 && rev > 0) acked.set(rev, at)
      await new Promise((r) => setTimeout(r, 5))
    }
    const deadline = performance.now() + 5000
    while (performance.now() < deadline && [...acked.keys()].some((r) => !seen.has(r)))
      await new Promise((r) => setTimeout(r, 20))
  } finally {
    stop()
    ;(background as unknown as { stop(): void }).stop()
  }
  const result = await background
  const seconds = (performance.now() - started) / 1000 + 0.5
  // An event may be read before the write's answer is: that is a latency of 0, not less.
  const latencies = [...acked]
    .filter(([rev]) => seen.has(rev))
    .map(([rev, at]) => Math.max(0, (seen.get(rev) as number) - at))
    .sort((a, b) => a - b)
  const at = (q: number) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? Number.NaN
  return {
    probes: acked.size,
    received: latencies.length,
    p50: at(0.5),
    p99: at(0.99),
    max: latencies.at(-1) ?? Number.NaN,
    loadRps: result.requests.total / seconds,
  }
}
