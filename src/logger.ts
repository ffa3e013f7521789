// Pino JSON lines on stdout (pretty only on a terminal). Credentials never reach a log line: the Authorization
// header and anything named like a token are redacted wherever they appear.
import pino, { type DestinationStream, type Logger } from 'pino'

export const REDACT = [
  'req.headers.authorization',
  'headers.authorization',
  'authorization',
  'token',
  '*.token',
  'config.CONFIG_API_TOKEN',
  'config.AUTH_TOKENS',
  'config.JWT_SECRET',
]

export function createLogger(level: string, destination?: DestinationStream): Logger {
  const options = { level, redact: { paths: REDACT, censor: '[redacted]' } }
  if (destination !== undefined) return pino(options, destination)
  if (process.stdout.isTTY) return pino({ ...options, transport: { target: 'pino-pretty' } })
  return pino(options)
}
