// A DNS server of the tests' own, on a UDP port of loopback: it answers A and AAAA questions from a table, NXDOMAIN
// for a name it does not hold, and never answers the names it is told to keep silent on (a resolver timing out).
// Webhook hosts are resolved through it (CONFIG_WEBHOOK_DNS_SERVERS), so no test needs the internet.
import { createSocket } from 'node:dgram'
import { once } from 'node:events'
import { isIPv4 } from 'node:net'

export interface DnsServer {
  /** `127.0.0.1:port`, for CONFIG_WEBHOOK_DNS_SERVERS. */
  address: string
  /** Questions received, as `name TYPE`. */
  questions: string[]
  close(): Promise<void>
}

/** Test host names: public ones, ones with private, loopback or link-local addresses, and one that never answers. */
export const TEST_HOSTS: Record<string, string[]> = {
  'hooks.acme.test': ['93.184.215.14'],
  'hook.eu2.make.com': ['18.156.0.10', '2a05:d014::1'],
  'internal.acme.test': ['10.1.2.3'],
  'mixed.acme.test': ['93.184.215.15', '192.168.7.7'],
  'loop.acme.test': ['127.0.0.2'],
  'v6local.acme.test': ['fe80::1'],
  'nodata.acme.test': [],
}
export const SILENT_HOST = 'slow.acme.test'

function readName(msg: Buffer, at: number): [string, number] {
  const labels: string[] = []
  let i = at
  while ((msg[i] as number) > 0) {
    const len = msg[i] as number
    labels.push(msg.subarray(i + 1, i + 1 + len).toString('ascii'))
    i += len + 1
  }
  return [labels.join('.').toLowerCase(), i + 1]
}

function ipv6Bytes(ip: string): Buffer {
  const [head = '', tail] = ip.split('::')
  const h = head ? head.split(':') : []
  const t = tail ? tail.split(':') : []
  const groups = tail === undefined ? h : [...h, ...Array(8 - h.length - t.length).fill('0'), ...t]
  const out = Buffer.alloc(16)
  groups.forEach((g, i) => {
    out.writeUInt16BE(Number.parseInt(g || '0', 16), i * 2)
  })
  return out
}

function answer(query: Buffer, table: Record<string, string[]>): Buffer {
  const [name, end] = readName(query, 12)
  const type = query.readUInt16BE(end)
  const question = query.subarray(12, end + 4)
  const known = Object.hasOwn(table, name)
  const records = (table[name] ?? []).filter((ip) => (type === 1 ? isIPv4(ip) : type === 28 && !isIPv4(ip)))
  const header = Buffer.alloc(12)
  query.copy(header, 0, 0, 2)
  header.writeUInt16BE(known ? 0x8180 : 0x8183, 2) // an answer, recursion available; NXDOMAIN for unknown names
  header.writeUInt16BE(1, 4)
  header.writeUInt16BE(records.length, 6)
  const answers = records.map((ip) => {
    const data = type === 1 ? Buffer.from(ip.split('.').map(Number)) : ipv6Bytes(ip)
    const rr = Buffer.alloc(12)
    rr.writeUInt16BE(0xc00c, 0) // the name: a pointer to the question's
    rr.writeUInt16BE(type, 2)
    rr.writeUInt16BE(1, 4)
    rr.writeUInt32BE(60, 6)
    rr.writeUInt16BE(data.length, 10)
    return Buffer.concat([rr, data])
  })
  return Buffer.concat([header, question, ...answers])
}

export async function startDnsServer(table: Record<string, string[]> = TEST_HOSTS): Promise<DnsServer> {
  const socket = createSocket('udp4')
  const questions: string[] = []
  socket.on('message', (query, peer) => {
    const [name, end] = readName(query, 12)
    questions.push(`${name} ${query.readUInt16BE(end) === 28 ? 'AAAA' : 'A'}`)
    if (name === SILENT_HOST) return
    socket.send(answer(query, table), peer.port, peer.address)
  })
  socket.bind(0, '127.0.0.1')
  await once(socket, 'listening')
  return {
    address: `127.0.0.1:${socket.address().port}`,
    questions,
    close: () => new Promise((resolve) => socket.close(() => resolve())),
  }
}
