// Schemas of verify and migrate (docs/operations.md): the HTTP bodies and answers, and the types the code uses.
import { type Static, Type } from 'typebox'
import { ErrorDetailSchema } from '../errors.js'
import { LayerNameSchema, Timestamp } from '../http/schemas.js'

const Keys = Type.Array(Type.String(), {
  description:
    'config keys; default: the keys the legacy check covers, keys with a schema of yours, and every key a layer holds',
})

export const VerifyBody = Type.Object({
  keys: Type.Optional(Keys),
  raw: Type.Optional(Type.Boolean({ description: 'include the effective payload' })),
  includeRawJson: Type.Optional(Type.Boolean({ description: 'same as raw' })),
  failOnDrift: Type.Optional(Type.Boolean({ description: 'a key whose layers disagree fails the check' })),
})

export const LayerCheck = Type.Object({
  state: Type.Union([
    Type.Literal('present'),
    Type.Literal('absent'),
    Type.Literal('unavailable'),
    Type.Literal('disabled'),
  ]),
  valid: Type.Union([Type.Boolean(), Type.Null()]),
  errors: Type.Array(ErrorDetailSchema),
  updated_at: Type.Union([Type.String(), Type.Null()]),
  sha256: Type.Union([Type.String(), Type.Null()]),
  reason: Type.Optional(Type.String()),
})

export const Drift = Type.Object({
  layers: Type.Array(LayerNameSchema),
  newer: Type.Union([LayerNameSchema, Type.Null()]),
})

export const VerifyResult = Type.Object({
  key: Type.String(),
  valid: Type.Boolean(),
  status: Type.Union([Type.Literal('OK'), Type.Literal('INVALID'), Type.Literal('MISSING')], {
    description: 'MISSING: no layer holds the key (and every layer answered)',
  }),
  message: Type.String(),
  summary: Type.String(),
  source: Type.Union([LayerNameSchema, Type.Null()]),
  updated_at: Type.Union([Type.String(), Type.Null()]),
  sha256: Type.Union([Type.String(), Type.Null()]),
  layers: Type.Record(Type.String(), LayerCheck),
  drift: Type.Array(Drift),
  warnings: Type.Array(Type.String()),
  errors: Type.Array(ErrorDetailSchema),
  payload_present: Type.Boolean(),
  payload: Type.Optional(Type.Union([Type.Object({}, { additionalProperties: true }), Type.Null()])),
})

export const VerifyReply = Type.Object({
  status: Type.Literal('success'),
  success: Type.Boolean(),
  ok: Type.Boolean(),
  exit_code: Type.Integer(),
  keys: Type.Array(Type.String()),
  unreachable: Type.Array(LayerNameSchema, {
    description: 'configured layers that could not be reached: the check is incomplete and exit_code is 1',
  }),
  results: Type.Array(VerifyResult),
  timestamp: Timestamp,
})

export const MigrateBody = Type.Object({
  keys: Type.Optional(Keys),
  dryRun: Type.Optional(Type.Boolean()),
  verify: Type.Optional(Type.Boolean({ default: true, description: 'read each key back from Redis and compare' })),
  force: Type.Optional(Type.Boolean({ description: 'write invalid values, and overwrite newer Redis values' })),
})

export const MigrateAction = Type.Enum([
  'migrated',
  'would_migrate',
  'unchanged',
  'skipped',
  'invalid',
  'conflict',
  'not_found',
  'failed',
])

export const MigrateResult = Type.Object({
  key: Type.String(),
  action: MigrateAction,
  source: Type.Union([Type.Literal('php'), Type.Literal('files'), Type.Null()]),
  reason: Type.Union([Type.String(), Type.Null()]),
  verified: Type.Union([Type.Boolean(), Type.Null()]),
  errors: Type.Optional(Type.Array(ErrorDetailSchema)),
  diff: Type.Optional(
    Type.Object({
      added: Type.Array(Type.String()),
      removed: Type.Array(Type.String()),
      changed: Type.Array(Type.String()),
    }),
  ),
})

export const MigrateReply = Type.Object({
  status: Type.Literal('success'),
  success: Type.Boolean(),
  exit_code: Type.Integer(),
  dry_run: Type.Boolean(),
  keys: Type.Array(Type.String()),
  log: Type.Array(Type.String()),
  results: Type.Array(MigrateResult),
  timestamp: Timestamp,
})

export type LayerCheck = Static<typeof LayerCheck>
export type VerifyResult = Static<typeof VerifyResult>
export type VerifyReply = Static<typeof VerifyReply>
export type MigrateResult = Static<typeof MigrateResult>
export type MigrateReply = Static<typeof MigrateReply>
