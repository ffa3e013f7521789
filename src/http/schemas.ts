// Schemas of the HTTP surface (docs/api.md). Route validation, response serialisation and openapi.yaml derive from
// these.
import { Type } from 'typebox'
import { type ConfigDocument, KEY_PATTERN, LayerNameSchema } from '../../stores/layer.js'
import { type ErrorCode, ErrorCodes, ErrorDetailSchema } from '../errors.js'
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
  stale: Type.Optional(
    Type.Literal(true, {
      description: 'the layer could not be reached: this is its last-known-good copy (header X-Config-Stale: 1)',
    }),
  ),
})

export const ConfigReply = Type.Object({
  status: Type.Literal('success'),
  key: Type.String(),
  data: Document,
  meta: Meta,
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
  timestamp: Timestamp,
})

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
