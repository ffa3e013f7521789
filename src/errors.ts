// The one error table (api.md "Envelope"): stable codes and their HTTP status. Stores and routes throw AppError;
// the error handler in src/error-handler.ts is the only place that turns errors into responses.
export const ErrorCodes = {
  INVALID_KEY: 400,
  VALIDATION_FAILED: 400,
  BAD_REQUEST: 400,
  UNAUTHORIZED: 401,
  FORBIDDEN: 403,
  CONFIG_NOT_FOUND: 404,
  NOT_FOUND: 404,
  METHOD_NOT_ALLOWED: 405,
  MIGRATION_IN_PROGRESS: 409,
  QUOTA_EXCEEDED: 409,
  DELETE_REFUSED: 409,
  PAYLOAD_TOO_LARGE: 413,
  UNSUPPORTED_MEDIA_TYPE: 415,
  TOO_MANY_REQUESTS: 429,
  INTERNAL_ERROR: 500,
  STORE_UNAVAILABLE: 503,
  WRITE_OUTCOME_UNKNOWN: 503,
} as const

export type ErrorCode = keyof typeof ErrorCodes

export interface ErrorDetail {
  path: string
  message: string
}

export class AppError extends Error {
  readonly code: ErrorCode
  readonly statusCode: number
  readonly details: ErrorDetail[] | undefined

  constructor(code: ErrorCode, message: string, options: { details?: ErrorDetail[]; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause })
    this.name = 'AppError'
    this.code = code
    this.statusCode = ErrorCodes[code]
    this.details = options.details
  }
}

/** What a failed write did: `not_written` when the layer is known not to have applied it (it was never sent, or
 * the layer answered with an error), `unknown` when it may have (a timeout, a connection lost in flight). */
export type WriteOutcome = 'not_written' | 'unknown'

/** Thrown by a store layer that could not answer; the message names the layer and says what failed. */
export class LayerUnavailableError extends AppError {
  readonly layer: string
  readonly outcome: WriteOutcome
  constructor(layer: string, reason: string, cause?: unknown, outcome: WriteOutcome = 'not_written') {
    super('STORE_UNAVAILABLE', `${layer} layer unavailable: ${reason}`, { cause })
    this.name = 'LayerUnavailableError'
    this.layer = layer
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
