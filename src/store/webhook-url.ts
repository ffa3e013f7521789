// Webhook URLs as the legacy app takes them (ki2pixel/render_signal_server@69f59fd, docs/keys.md "Webhook URLs"):
// a Make.com token is expanded to its URL (`utils/validators.normalize_make_webhook_url`), placeholder and local hosts
// are refused (`is_placeholder_webhook_url`), and so is a host that resolves to no address, or to any private,
// loopback or link-local one (`WebhookConfigService.validate_webhook_url`, the SSRF guard). The static rules are part
// of a document's validity; resolving is done when a write is made (src/store/webhook-dns.ts).
import { isIP } from 'node:net'

const MAKE_HOST = 'hook.eu2.make.com'

/** `normalize_make_webhook_url`: an http(s) URL as it is, `<token>@hook.eu2.make.com` or a bare token as the Make.com
 * URL; undefined for anything else (and for empty). */
export function makeWebhookUrl(value: string): string | undefined {
  const v = value.trim()
  if (v === '') return undefined
  if (v.startsWith('http://') || v.startsWith('https://')) return v
  if (v.includes(`@${MAKE_HOST}`)) {
    const token = v.split('@', 1)[0]?.trim()
    if (token) return `https://${MAKE_HOST}/${token}`
  }
  if (!/[/ @]/.test(v)) return `https://${MAKE_HOST}/${v}`
  return undefined
}

const PLACEHOLDER_HOSTS = new Set(['example.com', 'example.org', 'example.net', 'test.com', 'localhost', '127.0.0.1'])

/** The URL's host as Python's `urlparse(…).hostname` gives it (lower case, IPv6 without brackets), or undefined. */
export function hostOf(url: string): string | undefined {
  const m = /^[a-zA-Z][a-zA-Z0-9+.-]*:\/\/([^/?#]*)/.exec(url)
  if (m === null) return undefined
  const authority = (m[1] as string).slice((m[1] as string).lastIndexOf('@') + 1)
  const host = authority.startsWith('[') ? authority.slice(1, authority.indexOf(']')) : authority.split(':')[0]
  return host ? host.toLowerCase() : undefined
}

/** `is_placeholder_webhook_url`: reserved example domains, test.com and the local host names. */
export function isPlaceholderHost(host: string): boolean {
  return PLACEHOLDER_HOSTS.has(host) || host.endsWith('.example.com') || host.endsWith('.example.net')
}

/** An IPv4 address as a number. */
const v4Value = (ip: string) => ip.split('.').reduce((a, o) => a * 256 + Number(o), 0)
const v4 = (cidr: string): [number, number] => {
  const [ip, bits] = cidr.split('/') as [string, string]
  const n = v4Value(ip)
  return [n, n + 2 ** (32 - Number(bits)) - 1]
}
type Range = [bigint, bigint]
const v6 = (cidr: string): Range => {
  const [ip, bits] = cidr.split('/') as [string, string]
  const n = ipv6Value(ip)
  const size = 1n << BigInt(128 - Number(bits))
  return [n, n + size - 1n]
}

function ipv6Value(ip: string): bigint {
  let text = ip
  const dotted = /(\d+\.\d+\.\d+\.\d+)$/.exec(text)
  if (dotted) {
    const n = v4Value(dotted[1] as string)
    text = `${text.slice(0, dotted.index)}${Math.floor(n / 65536).toString(16)}:${(n % 65536).toString(16)}`
  }
  const [head, tail] = text.split('::') as [string, string | undefined]
  const h = head ? head.split(':') : []
  const t = tail ? tail.split(':') : []
  const groups = tail === undefined ? h : [...h, ...Array(8 - h.length - t.length).fill('0'), ...t]
  return groups.reduce((a, g) => (a << 16n) | BigInt(`0x${g || '0'}`), 0n)
}

// CPython 3.11's ipaddress: what `is_private`, `is_loopback` or `is_link_local` is true for.
const REFUSED_V4 = [
  '0.0.0.0/8',
  '10.0.0.0/8',
  '127.0.0.0/8',
  '169.254.0.0/16',
  '172.16.0.0/12',
  '192.0.0.0/29',
  '192.0.0.170/31',
  '192.0.2.0/24',
  '192.168.0.0/16',
  '198.18.0.0/15',
  '198.51.100.0/24',
  '203.0.113.0/24',
  '240.0.0.0/4',
  '255.255.255.255/32',
].map(v4)
const REFUSED_V6 = [
  '::1/128',
  '::/128',
  '::ffff:0:0/96',
  '100::/64',
  '2001::/23',
  '2001:2::/48',
  '2001:db8::/32',
  '2001:10::/28',
  'fc00::/7',
  'fe80::/10',
].map(v6)

/** Whether Python's `ipaddress.ip_address(ip)` is private, loopback or link-local: an address a webhook may not name. */
export function isRefusedAddress(ip: string): boolean {
  const family = isIP(ip)
  if (family === 4) {
    const n = v4Value(ip)
    return REFUSED_V4.some(([lo, hi]) => n >= lo && n <= hi)
  }
  if (family === 6) {
    const n = ipv6Value(ip.split('%')[0] as string)
    return REFUSED_V6.some(([lo, hi]) => n >= lo && n <= hi)
  }
  return false
}

// The last URL checked and its verdict: a write path checks the same URL several times, and a service is written the
// same few URLs again and again (a pure function of the text, so the memo cannot go stale).
let lastUrl: string | undefined
let lastProblem: string | undefined

/** Why the legacy app would refuse `url` as webhook_config's target without resolving it, or undefined. `url` is
 * what normalization made of the value: an https URL, or undefined when the value is no URL it recognises. */
export function staticWebhookProblem(url: string | undefined): string | undefined {
  if (url !== undefined && url === lastUrl) return lastProblem
  const problem = checkStatically(url)
  if (url !== undefined) [lastUrl, lastProblem] = [url, problem]
  return problem
}

function checkStatically(url: string | undefined): string | undefined {
  if (url === undefined)
    return 'must be empty, an https:// URL, a Make.com token, or <token>@hook.eu2.make.com (the legacy app stores anything else as null)'
  if (!url.startsWith('https://')) return 'must be an https:// URL'
  if (url.length < 10) return 'is too short for a URL (at least 10 characters)'
  const host = hostOf(url)
  if (host === undefined) return 'has no host'
  if (isPlaceholderHost(host))
    return `names ${host}, a placeholder or local host: the legacy app refuses it (example.com, example.org, example.net, test.com, subdomains of example.com and example.net, localhost, 127.0.0.1)`
  if (isIP(host) !== 0 && isRefusedAddress(host))
    return `names ${host}, a private, loopback or link-local address: the legacy app refuses it`
  return undefined
}
