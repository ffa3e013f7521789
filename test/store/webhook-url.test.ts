// Webhook targets as the legacy app takes them: the Make.com forms, placeholder hosts, and the addresses Python's
// ipaddress calls private, loopback or link-local (checked against the real Python where it is installed).
import { spawnSync } from 'node:child_process'
import { describe, expect, it } from 'vitest'
import { hostOf, isPlaceholderHost, isRefusedAddress, makeWebhookUrl } from '../../src/store/webhook-url.js'

const ADDRESSES: Array<[string, boolean]> = [
  ['10.0.0.1', true],
  ['172.16.5.4', true],
  ['172.32.0.1', false],
  ['192.168.0.1', true],
  ['127.0.0.1', true],
  ['169.254.169.254', true],
  ['100.64.0.1', false],
  ['0.0.0.0', true],
  ['192.0.2.10', true],
  ['203.0.113.7', true],
  ['198.18.0.1', true],
  ['240.0.0.1', true],
  ['255.255.255.255', true],
  ['8.8.8.8', false],
  ['93.184.215.14', false],
  ['::1', true],
  ['::', true],
  ['fe80::1', true],
  ['fd12:3456::1', true],
  ['::ffff:10.0.0.1', true],
  ['2001:db8::1', true],
  ['2001:4860:4860::8888', false],
  ['2a05:d014::1', false],
]

describe('webhook URLs', () => {
  it('a Make.com token or alias becomes its URL; an http(s) URL stays; anything else is no URL', () => {
    expect(makeWebhookUrl(' abc123 ')).toBe('https://hook.eu2.make.com/abc123')
    expect(makeWebhookUrl('abc123@hook.eu2.make.com')).toBe('https://hook.eu2.make.com/abc123')
    expect(makeWebhookUrl('https://h.acme.test/x')).toBe('https://h.acme.test/x')
    expect(makeWebhookUrl('http://h.acme.test/x')).toBe('http://h.acme.test/x')
    expect(makeWebhookUrl('a b')).toBeUndefined()
    expect(makeWebhookUrl('a/b')).toBeUndefined()
    expect(makeWebhookUrl('')).toBeUndefined()
  })

  it("hosts as Python's urlparse gives them, and the placeholder list", () => {
    expect(hostOf('https://User:pw@Hooks.ACME.test:8443/x?y')).toBe('hooks.acme.test')
    expect(hostOf('https://[FD00::1]:443/x')).toBe('fd00::1')
    expect(hostOf('https:///x')).toBeUndefined()
    for (const h of ['example.com', 'a.b.example.net', 'test.com', 'localhost'])
      expect(isPlaceholderHost(h), h).toBe(true)
    for (const h of ['a.example.org', 'example.co', 'mytest.com']) expect(isPlaceholderHost(h), h).toBe(false)
  })

  it.each(ADDRESSES)('%s refused: %s', (ip, refused) => expect(isRefusedAddress(ip)).toBe(refused))

  it.runIf(spawnSync('python3', ['-c', ''], {}).status === 0)('agrees with Python ipaddress', () => {
    const script = `
import ipaddress, json, sys
print(json.dumps([(lambda a: a.is_private or a.is_loopback or a.is_link_local)(ipaddress.ip_address(x)) for x in json.load(sys.stdin)]))`
    const run = spawnSync('python3', ['-c', script], {
      input: JSON.stringify(ADDRESSES.map(([ip]) => ip)),
      encoding: 'utf8',
    })
    expect(JSON.parse(run.stdout)).toEqual(ADDRESSES.map(([, refused]) => refused))
  })
})
