// JSON Merge Patch (RFC 7396): what PATCH applies to the effective document before it is validated and written.

export function applyMergePatch(target: unknown, patch: unknown): unknown {
  if (typeof patch !== 'object' || patch === null || Array.isArray(patch)) return patch
  // Null prototype: a member named `__proto__` is a member like any other, never the object's prototype.
  const out: Record<string, unknown> = Object.create(null)
  if (typeof target === 'object' && target !== null && !Array.isArray(target)) Object.assign(out, target)
  for (const [name, value] of Object.entries(patch)) {
    if (value === null) delete out[name]
    else out[name] = applyMergePatch(out[name], value)
  }
  return out
}
