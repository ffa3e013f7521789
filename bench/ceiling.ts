// The ceilings the service is measured against, in the same run: a bare Fastify 5 route that returns the bytes of
// a cached config read (`http`), and one that returns one ioredis GET of the same document (`redis`).
// usage: node dist/bench/ceiling.js http|redis   (PORT, BODY_FILE for http; REDIS_URL, REDIS_KEY for redis)
import { readFileSync } from 'node:fs'
import Fastify from 'fastify'
import { Redis } from 'ioredis'

const mode = process.argv[2]
const app = Fastify({ logger: false })
const json = 'application/json; charset=utf-8'

if (mode === 'http') {
  const body = readFileSync(process.env.BODY_FILE as string, 'utf8')
  app.get('/x', (_request, reply) => {
    reply.type(json).send(body)
  })
} else if (mode === 'redis') {
  const redis = new Redis(process.env.REDIS_URL as string)
  const key = process.env.REDIS_KEY as string
  app.get('/x', async (_request, reply) => reply.type(json).send(await redis.get(key)))
  app.addHook('onClose', async () => {
    redis.disconnect()
  })
} else {
  throw new Error('usage: ceiling.js http|redis')
}

await app.listen({ host: '127.0.0.1', port: Number(process.env.PORT) })
for (const signal of ['SIGTERM', 'SIGINT'] as const)
  process.once(signal, () => void app.close().then(() => process.exit(0)))
