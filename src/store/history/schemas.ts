// The shapes of history (docs/history.md): a revision, as the history routes answer it, and a change event, as the
// feed sends it. The Redis Stream's fields and the journal's lines are these same names.
import { type Static, Type } from 'typebox'
import { LayerNameSchema } from '../../../stores/layer.js'

export const ViaSchema = Type.Union(
  [
    Type.Literal('api'),
    Type.Literal('legacy-api'),
    Type.Literal('cli'),
    Type.Literal('migrate'),
    Type.Literal('import'),
    Type.Literal('rollback'),
    Type.Literal('external'),
  ],
  {
    description:
      'how the change came: a route, the legacy PHP route, the command line, a migration, an import, a rollback, or a write made behind the service (external)',
  },
)
export type Via = Static<typeof ViaSchema>

/** Who made a change, and how it came. */
export interface Attribution {
  /** A static token's `name`, a JWT's `sub`, `cli:<user>`, or `external`. */
  actor: string
  via: Via
}

const Sha = Type.Union([Type.String({ pattern: '^[0-9a-f]{64}$' }), Type.Null()])

export const RevisionSchema = Type.Object({
  revision: Type.Integer({ minimum: 1, description: 'monotonic per key, from 1' }),
  time: Type.String({ format: 'date-time' }),
  actor: Type.String(),
  via: ViaSchema,
  op: Type.Union([Type.Literal('write'), Type.Literal('delete')]),
  before: Type.Unsafe<string | null>({
    ...Sha,
    description: 'sha256 (hex) of the document before the change, null when there was none',
  }),
  after: Type.Unsafe<string | null>({ ...Sha, description: 'sha256 (hex) of the document after, null for a delete' }),
  source: LayerNameSchema,
  note: Type.Optional(
    Type.String({
      description:
        'what else is known of the change: the copy it replaced could not be parsed (`before` is the sha256 of its stored text)',
    }),
  ),
})
export type Revision = Static<typeof RevisionSchema>

export const ChangeEventSchema = Type.Object({
  key: Type.String(),
  revision: Type.Integer({ minimum: 1 }),
  time: Type.String({ format: 'date-time' }),
  actor: Type.String(),
  via: ViaSchema,
  op: Type.Union([Type.Literal('write'), Type.Literal('delete')]),
  sha256: Type.Unsafe<string | null>({ ...Sha, description: 'sha256 (hex) of the document after the change' }),
  source: LayerNameSchema,
})
export type ChangeEvent = Static<typeof ChangeEventSchema>

/** A change event at its position in the feed (`id`: what Last-Event-ID resumes from). */
export interface FeedEvent {
  id: string
  event: ChangeEvent
}

export const eventOf = (key: string, r: Revision): ChangeEvent => ({
  key,
  revision: r.revision,
  time: r.time,
  actor: r.actor,
  via: r.via,
  op: r.op,
  sha256: r.after,
  source: r.source,
})
