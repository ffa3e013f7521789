// The legacy app's SSRF guard for webhook_config's URL (`WebhookConfigService.validate_webhook_url`): a host that
// resolves to no address, or to any private, loopback or link-local one, is refused. A write is checked when it is
// made (CONFIG_WEBHOOK_URL_CHECK=resolve, the default); `static` keeps the checks that need no DNS (docs/keys.md
// "Webhook URLs"). Without CONFIG_WEBHOOK_DNS_SERVERS the system resolver answers, /etc/hosts included, as Python's
// getaddrinfo does; with it, those servers do.
import { lookup, Resolver } from 'node:dns/promises'
import { hostOf, isRefusedAddress } from './webhook-url.js'

export interface WebhookHostCheck {
  /** Why the host of `url` (an https URL with a host name, that passed the static checks) may not be a webhook target,
   * or undefined. */
  problem(url: string): Promise<string | undefined>
}

export interface WebhookHostOptions {
  mode: 'resolve' | 'static'
  timeoutMs: number
  /** `ip` or `ip:port` of the DNS servers to ask, instead of the system's resolver. */
  servers?: string[] | undefined
}

const NOT_FOUND = new Set(['ENOTFOUND', 'ENODATA', 'NXDOMAIN', 'EAI_NONAME', 'EAI_NODATA'])

export function webhookHostCheck(options: WebhookHostOptions): WebhookHostCheck {
  if (options.mode === 'static') return { problem: async () => undefined }
  const resolver = options.servers === undefined ? undefined : new Resolver({ timeout: options.timeoutMs, tries: 1 })
  resolver?.setServers(options.servers as string[])

  async function addresses(host: string): Promise<string[]> {
    if (resolver === undefined) return (await lookup(host, { all: true, verbatim: true })).map((a) => a.address)
    const found = await Promise.allSettled([resolver.resolve4(host), resolver.resolve6(host)])
    const failures = found.filter((r) => r.status === 'rejected').map((r) => r.reason as NodeJS.ErrnoException)
    const other = failures.find((e) => !NOT_FOUND.has(e.code ?? ''))
    if (other !== undefined) throw other
    // NXDOMAIN for the name (rather than no record of one type): it does not resolve at all
    const nxdomain = failures.find((e) => e.code === 'ENOTFOUND')
    if (failures.length === found.length && nxdomain !== undefined) throw nxdomain
    return found.flatMap((r) => (r.status === 'fulfilled' ? r.value : []))
  }

  return {
    async problem(url) {
      const host = hostOf(url) as string
      let timer: NodeJS.Timeout | undefined
      const timeout = new Promise<'timeout'>((resolve) => {
        timer = setTimeout(() => resolve('timeout'), options.timeoutMs)
      })
      try {
        const found = await Promise.race([addresses(host), timeout])
        if (found === 'timeout')
          return `its host ${host} could not be resolved within ${options.timeoutMs} ms (CONFIG_WEBHOOK_DNS_TIMEOUT_MS): the legacy app refuses a host it cannot resolve`
        if (found.length === 0) return `its host ${host} resolves to no address: the legacy app refuses it`
        const refused = found.find(isRefusedAddress)
        if (refused !== undefined)
          return `its host ${host} resolves to ${refused}, a private, loopback or link-local address: the legacy app refuses it (an SSRF guard)`
        return undefined
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code ?? 'an error'
        if (NOT_FOUND.has(code)) return `its host ${host} does not resolve (${code}): the legacy app refuses it`
        return `its host ${host} could not be resolved (${code}): the legacy app refuses a host it cannot resolve`
      } finally {
        clearTimeout(timer)
      }
    },
  }
}
