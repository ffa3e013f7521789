// Requests that hold their connection for long — change streams and blocking reads — are capped per token, per client
// address and in all, well below MAX_CONNECTIONS, so that one reader cannot take every connection: health checks and
// other callers keep room (docs/api.md "Long requests"). Beyond a cap the answer is 429, naming it.
import type { FastifyPluginAsync, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import type { AppConfig } from '../../config.js'
import { AppError } from '../../errors.js'

export interface LongRequests {
  /** Takes a slot for `request` (429 when a cap is reached); the function returned gives it back (once). */
  open(request: FastifyRequest): () => void
  /** Slots held now. */
  readonly held: number
}

declare module 'fastify' {
  interface FastifyInstance {
    longRequests: LongRequests
  }
}

function counter() {
  const counts = new Map<string, number>()
  return {
    get: (k: string) => counts.get(k) ?? 0,
    add(k: string, n: number) {
      const v = (counts.get(k) ?? 0) + n
      if (v <= 0) counts.delete(k)
      else counts.set(k, v)
    },
  }
}

const longRequestsPlugin: FastifyPluginAsync<{ config: AppConfig }> = async (app, { config }) => {
  const perClient = config.CONFIG_LONG_REQUESTS_PER_CLIENT
  const total = config.longRequestsMax
  const byToken = counter()
  const byAddress = counter()
  let held = 0
  app.decorate<LongRequests>('longRequests', {
    get held() {
      return held
    },
    open(request) {
      const token = request.principal?.name ?? 'anonymous'
      const address = request.ip
      const refuse = (what: string, cap: number, setting: string) => {
        throw new AppError(
          'TOO_MANY_REQUESTS',
          `${what} holds ${cap} change streams and blocking reads already, the most ${setting} allows; close one, or retry later`,
        )
      }
      if (byToken.get(token) >= perClient) refuse(`the token ${token}`, perClient, 'CONFIG_LONG_REQUESTS_PER_CLIENT')
      if (byAddress.get(address) >= perClient) refuse('this address', perClient, 'CONFIG_LONG_REQUESTS_PER_CLIENT')
      if (held >= total) refuse('the service', total, 'CONFIG_LONG_REQUESTS_MAX')
      byToken.add(token, 1)
      byAddress.add(address, 1)
      held++
      let open = true
      return () => {
        if (!open) return
        open = false
        byToken.add(token, -1)
        byAddress.add(address, -1)
        held--
      }
    },
  })
}

export default fp(longRequestsPlugin, { name: 'long-requests', fastify: '5.x' })
