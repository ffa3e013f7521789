// The one error table: every failure the service or the command line reports has a stable code here, with the HTTP
// status a route answers and the exit status the command line ends with (docs/api.md "Errors"). Layers catch library
// errors at their boundary and throw these; src/http/error-handler.ts turns them into responses, and `fatalLine` and
// `exitCodeOf` into the command line's last line and exit status.
import { type Static, Type } from 'typebox'

export const ErrorCodes = {
  INVALID_KEY: { status: 400, exit: 2 },
  VALIDATION_FAILED: { status: 400, exit: 1 },
  BAD_REQUEST: { status: 400, exit: 2 },
  USAGE: { status: 400, exit: 2 },
  UNAUTHORIZED: { status: 401, exit: 1 },
  FORBIDDEN: { status: 403, exit: 1 },
  CONFIG_NOT_FOUND: { status: 404, exit: 1 },
  NOT_FOUND: { status: 404, exit: 1 },
  REVISION_NOT_FOUND: { status: 404, exit: 1 },
  METHOD_NOT_ALLOWED: { status: 405, exit: 1 },
  MIGRATION_IN_PROGRESS: { status: 409, exit: 3 },
  QUOTA_EXCEEDED: { status: 409, exit: 1 },
  DELETE_REFUSED: { status: 409, exit: 1 },
  PRECONDITION_FAILED: { status: 412, exit: 1 },
  PAYLOAD_TOO_LARGE: { status: 413, exit: 1 },
  UNSUPPORTED_MEDIA_TYPE: { status: 415, exit: 1 },
  TOO_MANY_REQUESTS: { status: 429, exit: 1 },
  INVALID_CONFIG: { status: 500, exit: 1 },
  INTERNAL_ERROR: { status: 500, exit: 1 },
  STORE_UNAVAILABLE: { status: 503, exit: 1 },
  WRITE_OUTCOME_UNKNOWN: { status: 503, exit: 1 },
} as const satisfies Record<string, { status: number; exit: number }>

export type ErrorCode = keyof typeof ErrorCodes

export const ErrorDetailSchema = Type.Object({ path: Type.String(), message: Type.String() })
export type ErrorDetail = Static<typeof ErrorDetailSchema>

export class AppError extends Error {
  readonly code: ErrorCode
  readonly statusCode: number
  readonly details: ErrorDetail[] | undefined

  constructor(code: ErrorCode, message: string, options: { details?: ErrorDetail[]; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause })
    this.name = 'AppError'
    this.code = code
    this.statusCode = ErrorCodes[code].status
    this.details = options.details
  }
}

/** The configuration (environment, `.env`, a tokens or schemas file) is unusable: the process does not start. */
export class ConfigError extends AppError {
  constructor(message: string) {
    super('INVALID_CONFIG', message)
    this.name = 'ConfigError'
  }
}

/** A command line that cannot be run as given (an unknown flag, a missing argument, an unreadable file). */
export class UsageError extends AppError {
  constructor(message: string) {
    super('USAGE', message)
    this.name = 'UsageError'
  }
}

/** What a failed write did: `not_written` when the layer is known not to have applied it (it was never sent, or
 * the layer answered with an error), `unknown` when it may have (a timeout, a connection lost in flight),
 * `unreplicated` when the Redis master applied it but not enough replicas are known to hold it
 * (REDIS_WRITE_REPLICAS): reading it back from the master cannot tell whether a failover will keep it. */
export type WriteOutcome = 'not_written' | 'unknown' | 'unreplicated'

/** Thrown by a layer that could not answer; `reason` says what failed, without the layer's name. */
export class LayerUnavailableError extends AppError {
  readonly layer: string
  readonly reason: string
  readonly outcome: WriteOutcome
  constructor(layer: string, reason: string, cause?: unknown, outcome: WriteOutcome = 'not_written') {
    super('STORE_UNAVAILABLE', `${layer} layer unavailable: ${reason}`, { cause })
    this.name = 'LayerUnavailableError'
    this.layer = layer
    this.reason = reason
    this.outcome = outcome
  }
}

/** A one-line reason from any thrown value, for logs and layer outcomes (never sent with library internals). */
export function reasonOf(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code
    return typeof code === 'string' && !err.message.includes(code) ? `${code}: ${err.message}` : err.message
  }
  return String(err)
}

/** The exit status of a command that ended with `err`. */
export function exitCodeOf(err: unknown): number {
  return err instanceof AppError ? ErrorCodes[err.code].exit : 1
}

/** The one line a process prints before it exits on `err`; `doing` prefixes errors that are not the project's own. */
export function fatalLine(err: unknown, doing?: string): string {
  const message = err instanceof Error ? err.message : String(err)
  if (err instanceof ConfigError) return `config-store: invalid configuration: ${message}\n`
  if (err instanceof AppError || doing === undefined) return `config-store: ${message}\n`
  return `config-store: ${doing}: ${message}\n`
}
