// The ceilings the service is measured against, in the same run and with the same bytes (the service's answer, its
// headers included): a bare node:http server (`node-http`) and a bare Fastify 5 route (`http`) that answer the body
// of a cached read; a Fastify route that answers one ioredis GET of a key holding that body (`redis`); and one that
// stores the posted document with one ioredis SET and answers the body of the service's POST (`redis-set`).
// usage: node dist/bench/ceiling.js node-http|http|redis|redis-set
//   (PORT; HEADERS, the answer's headers as JSON; BODY_FILE for all but redis; REDIS_URL, REDIS_KEY for redis and
//   redis-set)
import { readFileSync } from 'node:fs'
import { createServer } from 'node:http'
import Fastify from 'fastify'
import { Redis } from 'ioredis'

const mode = process.argv[2]
const port = Number(process.env.PORT)
const headers = JSON.parse(process.env.HEADERS ?? '{}') as Record<string, string>

if (mode === 'node-http') {
  const body = readFileSync(process.env.BODY_FILE as string)
  const server = createServer((_request, response) => {
    response.writeHead(200, { ...headers, 'content-length': body.length }).end(body)
  }).listen(port, '127.0.0.1')
  for (const signal of ['SIGTERM', 'SIGINT'] as const)
    process.once(signal, () => server.close(() => process.exit(0)).closeAllConnections())
} else {
  const app = Fastify({ logger: false })
  if (mode === 'http') {
    const body = readFileSync(process.env.BODY_FILE as string, 'utf8')
    app.get('/x', (_request, reply) => {
      reply.headers(headers).send(body)
    })
  } else if (mode === 'redis' || mode === 'redis-set') {
    const redis = new Redis(process.env.REDIS_URL as string)
    const key = process.env.REDIS_KEY as string
    if (mode === 'redis') app.get('/x', async (_request, reply) => reply.headers(headers).send(await redis.get(key)))
    else {
      const body = readFileSync(process.env.BODY_FILE as string, 'utf8')
      app.post('/x', async (request, reply) => {
        await redis.set(key, JSON.stringify(request.body))
        return reply.headers(headers).send(body)
      })
    }
    app.addHook('onClose', async () => {
      redis.disconnect()
    })
  } else {
    throw new Error('usage: ceiling.js node-http|http|redis|redis-set')
  }
  await app.listen({ host: '127.0.0.1', port })
  for (const signal of ['SIGTERM', 'SIGINT'] as const)
    process.once(signal, () => void app.close().then(() => process.exit(0)))
}
