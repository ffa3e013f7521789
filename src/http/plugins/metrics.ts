// Prometheus metrics (prom-client) at /metrics, in its text format: requests by route, method and status with a
// latency histogram; per layer, its answers, fallbacks and last-known-good answers; the cache; invalidation notices;
// write outcomes; failed authentications and rate-limited requests; migrations; and the default process metrics.
// The store's figures are plain counters it keeps anyway, read when /metrics is scraped, so a request pays only for
// the HTTP counters, bound to each route when it is registered. Who may read /metrics: docs/api.md "Metrics".
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { Counter, collectDefaultMetrics, Gauge, Registry } from 'prom-client'
import { LAYER_ORDER } from '../../../stores/layer.js'
import type { AppConfig } from '../../config.js'

export interface Metrics {
  registry: Registry
  authFailures: Counter<'reason'>
  rateLimited: Counter
  migrations: Counter<'result'>
  /** Requests to the legacy route (/config_api.php), by method, caller and client software. */
  legacyRequests: Counter<'method' | 'client' | 'agent'>
  /** A request that matched no route. */
  unmatched(request: FastifyRequest, reply: FastifyReply): void
}

declare module 'fastify' {
  interface FastifyInstance {
    metrics: Metrics
  }
}

const PREFIX = 'config_store_'
const SECONDS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5]

const metricsPlugin: FastifyPluginAsync<{ config: AppConfig }> = async (app, { config }) => {
  const registry = new Registry()
  collectDefaultMetrics({ register: registry, prefix: PREFIX })
  const registers = [registry]
  // Per route and method: answers by status, and a latency histogram, as plain numbers. prom-client's own Counter and
  // Histogram hash their labels on every call; these are read, and turned into samples, only when scraped.
  const series: Series = []
  registry.registerMetric(requestsMetric(series) as never)
  registry.registerMetric(latencyMetric(series) as never)

  /** Counts the answers of `route`, per method. */
  function recorder(route: string) {
    const byMethod = new Map<string, Series[number]>()
    return (request: FastifyRequest, reply: FastifyReply) => {
      let s = byMethod.get(request.method)
      if (s === undefined) {
        s = {
          route,
          method: request.method,
          statuses: new Map(),
          buckets: new Array(SECONDS.length + 1).fill(0),
          sum: 0,
        }
        byMethod.set(request.method, s)
        series.push(s)
      }
      s.statuses.set(reply.statusCode, (s.statuses.get(reply.statusCode) ?? 0) + 1)
      const seconds = reply.elapsedTime / 1000
      let i = 0
      while (i < SECONDS.length && seconds > (SECONDS[i] as number)) i++
      ;(s.buckets[i] as number)++
      s.sum += seconds
    }
  }

  if (config.metrics) {
    app.addHook('onRoute', (route) => {
      if (route.url === '/metrics') return
      const record = recorder(route.url)
      const hook = (request: FastifyRequest, reply: FastifyReply, done: () => void) => {
        record(request, reply)
        done()
      }
      const existing = route.onResponse
      route.onResponse = existing === undefined ? [hook] : [...[existing].flat(), hook]
    })
  }
  const unmatched = config.metrics ? recorder('(unmatched)') : () => {}

  // The store's own counters, read when scraped.
  const stats = () => app.store.stats()
  new Counter({
    name: `${PREFIX}layer_reads_total`,
    help: 'answers of each layer to reads: hit, absent, unavailable',
    labelNames: ['layer', 'result'],
    registers,
    collect() {
      this.reset()
      const { reads } = stats().counts
      for (const layer of stats().layers)
        for (const [result, n] of Object.entries(reads[layer])) this.inc({ layer, result }, n)
    },
  })
  for (const [name, help, field] of [
    ['fallbacks_total', 'reads served by a layer while a layer above it was down', 'fallbacks'],
    ['last_known_good_total', "reads served from a layer's last-known-good copy (stale)", 'stale'],
  ] as const)
    new Counter({
      name: `${PREFIX}${name}`,
      help,
      labelNames: ['layer'],
      registers,
      collect() {
        this.reset()
        const counts = stats().counts[field]
        for (const layer of LAYER_ORDER) if (counts[layer] > 0) this.inc({ layer }, counts[layer])
      },
    })
  new Counter({
    name: `${PREFIX}layer_unavailable_total`,
    help: 'reads and writes a layer could not answer',
    labelNames: ['layer'],
    registers,
    collect() {
      this.reset()
      const { layers, unavailable } = stats()
      for (const layer of layers) this.inc({ layer }, unavailable[layer] ?? 0)
    },
  })
  new Counter({
    name: `${PREFIX}writes_total`,
    help: 'writes to the primary by outcome: ok, refused (known not written), unknown',
    labelNames: ['outcome'],
    registers,
    collect() {
      this.reset()
      for (const [outcome, n] of Object.entries(stats().counts.writes)) this.inc({ outcome }, n)
    },
  })
  new Counter({
    name: `${PREFIX}cache_lookups_total`,
    help: 'reads by whether the cache answered them (hit) or the layers did (miss)',
    labelNames: ['result'],
    registers,
    collect() {
      this.reset()
      const { hits, misses } = stats().cache
      this.inc({ result: 'hit' }, hits)
      this.inc({ result: 'miss' }, misses)
    },
  })
  for (const [name, help, value] of [
    ['cache_entries', 'values in the read cache', () => stats().cache.entries],
    ['cache_bytes', 'bytes the read cache holds (bounded by 3/8 of CONFIG_CACHE_MAX_BYTES)', () => stats().cache.bytes],
    ['blocking_reads', 'blocking reads (GET …?wait=) waiting now', () => stats().waiting],
  ] as const)
    new Gauge({
      name: `${PREFIX}${name}`,
      help,
      registers,
      collect() {
        this.set(value())
      },
    })
  new Counter({
    name: `${PREFIX}invalidation_notices_total`,
    help: 'change notices received from Redis (tracking invalidations and announcements)',
    registers,
    collect() {
      this.reset()
      this.inc(stats().notices)
    },
  })

  app.decorate('metrics', {
    registry,
    unmatched,
    authFailures: new Counter({
      name: `${PREFIX}auth_failures_total`,
      help: 'failed authentications, by reason',
      labelNames: ['reason'],
      registers,
    }),
    rateLimited: new Counter({
      name: `${PREFIX}rate_limited_total`,
      help: 'requests refused with 429 after too many failed authentications from their address',
      registers,
    }),
    migrations: new Counter({
      name: `${PREFIX}migrations_total`,
      help: 'migrations run through the API, by result: success, failure, refused',
      labelNames: ['result'],
      registers,
    }),
    legacyRequests: new Counter({
      name: `${PREFIX}legacy_requests_total`,
      help: 'requests to /config_api.php by method, caller (token name) and client software (User-Agent product): a legacy app whose Redis client fails sends its traffic here',
      labelNames: ['method', 'client', 'agent'],
      registers,
    }),
  })
}

export default fp(metricsPlugin, { name: 'metrics', fastify: '5.x', dependencies: ['store'] })

type Series = Array<{ route: string; method: string; statuses: Map<number, number>; buckets: number[]; sum: number }>

/** config_store_http_requests_total, in the shape prom-client's registry formats. */
function requestsMetric(series: Series) {
  const name = `${PREFIX}http_requests_total`
  return {
    name,
    help: 'HTTP requests answered, by route, method and status',
    type: 'counter',
    aggregator: 'sum',
    get: () => ({
      name,
      help: 'HTTP requests answered, by route, method and status',
      type: 'counter',
      aggregator: 'sum',
      values: series.flatMap(({ route, method, statuses }) =>
        [...statuses].map(([status, value]) => ({ labels: { route, method, status: String(status) }, value })),
      ),
    }),
  }
}

/** config_store_http_request_duration_seconds: a histogram of the same series. */
function latencyMetric(series: Series) {
  const name = `${PREFIX}http_request_duration_seconds`
  const help = 'time from the request arriving to its answer being sent, by route and method'
  return {
    name,
    help,
    type: 'histogram',
    aggregator: 'sum',
    get: () => ({
      name,
      help,
      type: 'histogram',
      aggregator: 'sum',
      values: series.flatMap(({ route, method, buckets, sum }) => {
        let cumulative = 0
        const count = buckets.reduce((a, b) => a + b, 0)
        const bucketSamples = [...SECONDS, Number.POSITIVE_INFINITY].map((le, i) => {
          cumulative += buckets[i] as number
          const bound = le === Number.POSITIVE_INFINITY ? '+Inf' : String(le)
          return { metricName: `${name}_bucket`, labels: { le: bound, route, method }, value: cumulative }
        })
        return [
          ...bucketSamples,
          { metricName: `${name}_sum`, labels: { route, method }, value: sum },
          { metricName: `${name}_count`, labels: { route, method }, value: count },
        ]
      }),
    }),
  }
}
