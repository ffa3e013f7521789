// The shapes the store answers with, as TypeBox schemas: the HTTP replies are built from these, and the store's types
// come from them, so the two cannot drift apart.
import { type Static, Type } from 'typebox'
import { DeleteOutcomeSchema, LayerHealthSchema, LayerNameSchema } from '../../stores/layer.js'

export const SchemaKindSchema = Type.Union([Type.Literal('builtin'), Type.Literal('custom'), Type.Literal('none')], {
  description: 'builtin: a key of this service; custom: a schema from CONFIG_SCHEMAS_DIR; none: free-form',
})
export type SchemaKind = Static<typeof SchemaKindSchema>

export const ListedKeySchema = Type.Object({
  key: Type.String(),
  source: Type.Union([LayerNameSchema, Type.Null()], { description: 'the layer serving it; null when none holds it' }),
  updated_at: Type.Union([Type.String(), Type.Null()]),
  schema: SchemaKindSchema,
})
export type ListedKey = Static<typeof ListedKeySchema>

export const DeleteOutcomesSchema = Type.Record(Type.String(), DeleteOutcomeSchema, {
  description: 'per layer: whether it held the key',
})

export const LayerReportSchema = Type.Object({
  layer: LayerNameSchema,
  ...LayerHealthSchema.properties,
  unavailable: Type.Integer({ description: 'reads and writes this layer could not answer since start-up' }),
})
export type LayerReport = Static<typeof LayerReportSchema>
