// JSON Patch (RFC 6902) between two documents, for the diff of two revisions: fast-json-patch's `compare`.
import fastJsonPatch from 'fast-json-patch'

export interface PatchOperation {
  op: 'add' | 'remove' | 'replace' | 'move' | 'copy' | 'test'
  path: string
  value?: unknown
  from?: string
}

export const jsonPatch = (from: object, to: object): PatchOperation[] =>
  fastJsonPatch.compare(from, to) as PatchOperation[]
