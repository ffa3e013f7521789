// Schemas of the HTTP surface (docs/api.md). Route validation, response serialisation and openapi.yaml derive from
// these.
import { Type } from 'typebox'
import { type ConfigDocument, KEY_PATTERN, LayerNameSchema } from '../../stores/layer.js'
import { type ErrorCode, ErrorCodes, ErrorDetailSchema } from '../errors.js'
import { RevisionSchema } from '../store/history/schemas.js'
import { DeleteOutcomesSchema, ListedKeySchema } from '../store/schemas.js'

export const Timestamp = Type.String({ format: 'date-time' })
export { LayerNameSchema }
export const Document = Type.Unsafe<ConfigDocument>({
  type: 'object',
  additionalProperties: true,
  description: 'a config document (a JSON object)',
})

export const KeyParams = Type.Object({
  key: Type.String({ pattern: KEY_PATTERN.source, description: 'config key name' }),
})

export const ErrorBody = Type.Object({
  status: Type.Literal('error'),
  code: Type.Unsafe<ErrorCode>({
    type: 'string',
    enum: Object.keys(ErrorCodes),
    description: 'a code of the error table (README "API")',
  }),
  message: Type.String(),
  details: Type.Optional(Type.Array(ErrorDetailSchema)),
  timestamp: Timestamp,
})

export const Meta = Type.Object({
  source: LayerNameSchema,
  updated_at: Type.Union([Type.String(), Type.Null()]),
  revision: Type.Optional(
    Type.Union([Type.Integer({ minimum: 1 }), Type.Null()], {
      description:
        'a write: the revision it made (null: it landed, but its revision could not be recorded); a read with ?revision=: that revision',
    }),
  ),
  stale: Type.Optional(
    Type.Literal(true, {
      description:
        "the layer could not be reached: this is its last-known-good copy, or (REDIS_READ_FROM=replica) a Redis replica's, which may lag (header X-Config-Stale: 1)",
    }),
  ),
})

export const ConfigReply = Type.Object({
  status: Type.Literal('success'),
  key: Type.String(),
  data: Document,
  meta: Meta,
  warnings: Type.Optional(
    Type.Array(Type.String(), {
      description: 'a write that succeeded but looks like a mistake: a new key a typo away from one that exists',
    }),
  ),
  timestamp: Timestamp,
})

export const ListReply = Type.Object({
  status: Type.Literal('success'),
  keys: Type.Array(ListedKeySchema),
  timestamp: Timestamp,
})

export const DeleteReply = Type.Object({
  status: Type.Literal('success'),
  key: Type.String(),
  layers: DeleteOutcomesSchema,
  revision: Type.Union([Type.Integer({ minimum: 1 }), Type.Null()], {
    description: 'the revision the delete made (null: it could not be recorded)',
  }),
  timestamp: Timestamp,
})

export const HistoryReply = Type.Object({
  status: Type.Literal('success'),
  key: Type.String(),
  revisions: Type.Array(RevisionSchema, { description: 'newest first' }),
  timestamp: Timestamp,
})

export const PatchOperationSchema = Type.Object({
  op: Type.Union([
    Type.Literal('add'),
    Type.Literal('remove'),
    Type.Literal('replace'),
    Type.Literal('move'),
    Type.Literal('copy'),
    Type.Literal('test'),
  ]),
  path: Type.String(),
  value: Type.Optional(Type.Unknown()),
  from: Type.Optional(Type.String()),
})

export const DiffReply = Type.Object({
  status: Type.Literal('success'),
  key: Type.String(),
  from: Type.Integer({ minimum: 1 }),
  to: Type.Union([Type.Integer({ minimum: 1 }), Type.Null()], { description: 'null: the current document' }),
  patch: Type.Array(PatchOperationSchema, { description: 'RFC 6902 JSON Patch from `from` to `to`' }),
  timestamp: Timestamp,
})

/** A revision number in a query string or a body. */
export const RevisionNumber = Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER })

/** The PHP contract's read: both shapes. */
export const LegacyRead = Type.Object({
  success: Type.Literal(true),
  config: Document,
  status: Type.Literal('success'),
  data: Document,
  timestamp: Timestamp,
})

export const LegacyError = Type.Object({ success: Type.Literal(false), message: Type.String() })

/** The answers every authenticated route may give besides its own. */
export const errorResponses = { '4xx': ErrorBody, '5xx': ErrorBody }
