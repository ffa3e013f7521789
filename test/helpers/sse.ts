// A Server-Sent Events client for tests: connects over real HTTP, parses the stream as it comes, and lets a test wait
// for the events it expects.
import { request } from 'node:http'
import { until } from './wait.js'

export interface SseEvent {
  id?: string
  event: string
  data: string
}

export interface SseClient {
  status: number
  headers: Record<string, string | string[] | undefined>
  events: SseEvent[]
  /** Comment lines (`: heartbeat`). */
  comments: string[]
  /** Resolves once `n` events have come (throws after `ms`). */
  waitFor(n: number, ms?: number): Promise<SseEvent[]>
  /** The `change` events' data, parsed. */
  changes(): Array<Record<string, unknown>>
  ended: boolean
  /** Stops reading (the server's writes back up), and goes on. */
  pause(): void
  resume(): void
  close(): void
}

export function sse(url: string, headers: Record<string, string> = {}): Promise<SseClient> {
  return new Promise((resolve, reject) => {
    const req = request(url, { headers: { accept: 'text/event-stream', ...headers } }, (res) => {
      let buffer = ''
      const client: SseClient = {
        status: res.statusCode ?? 0,
        headers: res.headers,
        events: [],
        comments: [],
        ended: false,
        async waitFor(n, ms = 3000) {
          await until(() => client.events.length >= n || client.ended, ms)
          return client.events
        },
        changes: () => client.events.filter((e) => e.event === 'change').map((e) => JSON.parse(e.data)),
        pause: () => res.pause(),
        resume: () => res.resume(),
        close: () => req.destroy(),
      }
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => {
        buffer += chunk
        let end = buffer.indexOf('\n\n')
        while (end >= 0) {
          const block = buffer.slice(0, end)
          buffer = buffer.slice(end + 2)
          const e: SseEvent = { event: 'message', data: '' }
          let isEvent = false
          for (const line of block.split('\n')) {
            const [, field, value = ''] = /^(id|event|data): (.*)$/.exec(line) ?? []
            if (line.startsWith(':')) client.comments.push(line.slice(1).trim())
            else if (field === 'id') e.id = value
            else if (field === 'event') e.event = value
            else if (field === 'data') e.data += value
            isEvent ||= field !== undefined
          }
          if (isEvent && (e.data !== '' || e.event !== 'message')) client.events.push(e)
          end = buffer.indexOf('\n\n')
        }
      })
      res.on('end', () => {
        client.ended = true
      })
      res.on('error', () => {
        client.ended = true
      })
      resolve(client)
    })
    req.on('error', reject)
    req.end()
  })
}
