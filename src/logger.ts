// Pino JSON lines on stdout (pretty only on a terminal). Credentials never reach a log line: the Authorization
// header and anything named like a token are redacted wherever they appear.
import type { FastifyBaseLogger } from 'fastify'
import pino, { type Bindings, type ChildLoggerOptions, type DestinationStream, type LogFn, type Logger } from 'pino'

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

/** A request as its log lines show it: the path without its query string (a secret pasted into one is not logged). */
function requestFields(req: {
  method?: string
  url?: string
  host?: string
  ip?: string
  socket?: { remoteAddress?: string }
}) {
  const url = req.url ?? ''
  const q = url.indexOf('?')
  return {
    method: req.method,
    url: q === -1 ? url : url.slice(0, q),
    host: req.host,
    remoteAddress: req.ip ?? req.socket?.remoteAddress,
  }
}

/** A reply as the request's last log line shows it: the status, and who asked (a token's name or a JWT's `sub`, never
 * the token). */
function replyFields(reply: { statusCode?: number; request?: { principal?: { name: string } | null } }) {
  const actor = reply.request?.principal?.name
  return actor === undefined ? { statusCode: reply.statusCode } : { statusCode: reply.statusCode, actor }
}

export function createLogger(level: string, destination?: DestinationStream): Logger {
  const options = {
    level,
    redact: { paths: REDACT, censor: '[redacted]' },
    serializers: { req: requestFields, res: replyFields },
  }
  if (destination !== undefined) return pino(options, destination)
  if (process.stdout.isTTY) return pino({ ...options, transport: { target: 'pino-pretty' } })
  return pino(options)
}

/** Fastify's per-request child logger, made only when a request logs something its level lets through: at `warn`,
 * a request that logs nothing costs no child logger (a measurable part of a cached read). */
export function lazyChildLogger(
  logger: FastifyBaseLogger,
  bindings: Bindings,
  options: ChildLoggerOptions,
): FastifyBaseLogger {
  if (options.level !== undefined) return logger.child(bindings, options)
  return new LazyChild(logger as Logger, bindings, options) as unknown as FastifyBaseLogger
}

class LazyChild {
  #child: Logger | undefined
  readonly #parent: Logger
  readonly #bindings: Bindings
  readonly #options: ChildLoggerOptions

  constructor(parent: Logger, bindings: Bindings, options: ChildLoggerOptions) {
    this.#parent = parent
    this.#bindings = bindings
    this.#options = options
  }

  #real(): Logger {
    this.#child ??= this.#parent.child(this.#bindings, this.#options)
    return this.#child
  }

  get level(): string {
    return (this.#child ?? this.#parent).level
  }
  set level(level: string) {
    this.#real().level = level
  }
  child(bindings: Bindings, options?: ChildLoggerOptions) {
    return this.#real().child(bindings, options)
  }
  silent() {}
  fatal(...args: Parameters<LogFn>) {
    if (this.#parent.isLevelEnabled('fatal')) this.#real().fatal(...args)
  }
  error(...args: Parameters<LogFn>) {
    if (this.#parent.isLevelEnabled('error')) this.#real().error(...args)
  }
  warn(...args: Parameters<LogFn>) {
    if (this.#parent.isLevelEnabled('warn')) this.#real().warn(...args)
  }
  info(...args: Parameters<LogFn>) {
    if (this.#parent.isLevelEnabled('info')) this.#real().info(...args)
  }
  debug(...args: Parameters<LogFn>) {
    if (this.#parent.isLevelEnabled('debug')) this.#real().debug(...args)
  }
  trace(...args: Parameters<LogFn>) {
    if (this.#parent.isLevelEnabled('trace')) this.#real().trace(...args)
  }
}
