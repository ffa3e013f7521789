// JWTs signed here with node:crypto, independent of the code under test.
import { createHmac, generateKeyPairSync, sign } from 'node:crypto'

const b64 = (value: object) => Buffer.from(JSON.stringify(value)).toString('base64url')

export const JWT_SECRET = 'a-test-secret-that-is-at-least-32-characters'

/** Claims every accepted JWT carries, unless a test overrides them (`exp: undefined` leaves exp out). */
const standard = () => ({ iat: Math.floor(Date.now() / 1000), exp: Math.floor(Date.now() / 1000) + 3600 })

export function hs256(claims: Record<string, unknown>, secret = JWT_SECRET): string {
  const input = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64({ ...standard(), ...claims })}`
  return `${input}.${createHmac('sha256', secret).update(input).digest('base64url')}`
}

export function rsaKeys() {
  const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 })
  const publicPem = publicKey.export({ type: 'spki', format: 'pem' }).toString()
  const rs256 = (claims: Record<string, unknown>) => {
    const input = `${b64({ alg: 'RS256', typ: 'JWT' })}.${b64({ ...standard(), ...claims })}`
    return `${input}.${sign('sha256', Buffer.from(input), privateKey).toString('base64url')}`
  }
  return { publicPem, rs256 }
}
