// One redis-server for the whole run (each test uses its own key prefix on it), and one DNS server for webhook hosts.
import type {} from 'vitest'
import type { TestProject } from 'vitest/node'
import { INSTALL_HINT, startRedisServer } from '../../scripts/redis-server.js'
import { startDnsServer } from './dns-server.js'

declare module 'vitest' {
  export interface ProvidedContext {
    redisUrl: string
    /** The tests' DNS server (test/helpers/dns-server.ts), for CONFIG_WEBHOOK_DNS_SERVERS. */
    dnsServer: string
  }
}

export default async function setup(project: TestProject) {
  const server = await startRedisServer().catch((err: Error) => {
    if (err.message !== INSTALL_HINT) throw err
    process.stderr.write(`${INSTALL_HINT}\n`) // one line, not a stack: the suite needs a real Redis, it is not skipped
    process.exit(1)
  })
  project.provide('redisUrl', server.url)
  const dns = await startDnsServer()
  project.provide('dnsServer', dns.address)
  return async () => {
    await dns.close()
    await server.stop()
  }
}
