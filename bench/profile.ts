// Where a path's CPU goes: a V8 CPU profile (node --cpu-prof) of a server under one load, read back through the
// bundle's source maps. The top frames by self time, and the inclusive share of chosen source files (the part of
// the work that happens inside them or in what they call).
import { readdirSync, readFileSync } from 'node:fs'
import { SourceMap } from 'node:module'
import { join } from 'node:path'

interface CallFrame {
  functionName: string
  url: string
  lineNumber: number
  columnNumber: number
}
interface ProfileNode {
  id: number
  callFrame: CallFrame
  children?: number[]
}
interface CpuProfile {
  nodes: ProfileNode[]
  startTime: number
  samples: number[]
  timeDeltas: number[]
}

export interface ProfileSummary {
  /** Samples counted (those after `skipMs`). */
  samples: number
  top: Array<{ frame: string; share: number }>
  /** For each file pattern asked for: the share of samples with a frame from a matching source on the stack. */
  inclusive: Record<string, number>
}

const maps = new Map<string, SourceMap | null>()
function sourceMapOf(url: string): SourceMap | null {
  let map = maps.get(url)
  if (map === undefined) {
    try {
      const path = new URL(`${url}.map`).pathname
      map = new SourceMap(JSON.parse(readFileSync(path, 'utf8')))
    } catch {
      map = null
    }
    maps.set(url, map)
  }
  return map
}

/** A frame's name in the sources: `function (file:line)`, with node_modules and the project's root trimmed. */
function origin(f: CallFrame): { frame: string; file: string } {
  if (f.url === '') return { frame: f.functionName || '(anonymous)', file: '' }
  const map = f.url.startsWith('file:') ? sourceMapOf(f.url) : null
  const o = map?.findOrigin(f.lineNumber + 1, f.columnNumber + 1) as
    | { name?: string; fileName?: string; lineNumber?: number }
    | undefined
  if (o?.fileName === undefined) {
    const file = f.url.replace(/^.*\/node_modules\//, '')
    return { frame: `${f.functionName || '(anonymous)'} (${file}:${f.lineNumber + 1})`, file }
  }
  const file = o.fileName.replace(/^.*\/node_modules\//, '').replace(/^.*?\/(src|stores|routes)\//, '$1/')
  return { frame: `${o.name || f.functionName || '(anonymous)'} (${file}:${o.lineNumber})`, file }
}

/** The one profile in `dir`, its first `skipMs` (start-up, warm-up) left out. */
export function summarize(dir: string, skipMs: number, files: Record<string, RegExp>, top = 5): ProfileSummary {
  const name = readdirSync(dir).find((f) => f.endsWith('.cpuprofile'))
  if (name === undefined) throw new Error(`no CPU profile was written into ${dir}`)
  const p = JSON.parse(readFileSync(join(dir, name), 'utf8')) as CpuProfile
  const parent = new Map<number, number>()
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id)
  const origins = new Map(p.nodes.map((n) => [n.id, origin(n.callFrame)]))
  const self = new Map<string, number>()
  const inclusive = Object.fromEntries(Object.keys(files).map((k) => [k, 0]))
  let t = p.startTime
  let counted = 0
  for (let i = 0; i < p.samples.length; i++) {
    t += p.timeDeltas[i] ?? 0
    const id = p.samples[i] as number
    if (t - p.startTime < skipMs * 1000) continue
    const o = origins.get(id)
    if (o === undefined || o.frame === '(idle)') continue
    counted++
    self.set(o.frame, (self.get(o.frame) ?? 0) + 1)
    const onStack = new Set<string>()
    for (let n: number | undefined = id; n !== undefined; n = parent.get(n)) {
      const file = origins.get(n)?.file ?? ''
      for (const [k, re] of Object.entries(files)) if (re.test(file)) onStack.add(k)
    }
    for (const k of onStack) inclusive[k] = (inclusive[k] ?? 0) + 1
  }
  const share = (n: number) => (counted === 0 ? 0 : n / counted)
  return {
    samples: counted,
    top: [...self]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([frame, n]) => ({ frame, share: share(n) })),
    inclusive: Object.fromEntries(Object.entries(inclusive).map(([k, n]) => [k, share(n)])),
  }
}
