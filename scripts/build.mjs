// npm run build: the production build. esbuild bundles the service, the CLI and the benchmark into dist/ (one file
// each plus shared chunks): loading one bundle instead of hundreds of ESM files is what brings start-to-ready under
// 500 ms. Type checking is `npm run typecheck` (tsc --noEmit). Kept as plain .mjs so that building needs no loader.
import { rmSync } from 'node:fs'
import { build } from 'esbuild'

rmSync(new URL('../dist', import.meta.url), { recursive: true, force: true })
await build({
  entryPoints: ['src/cli/bin.ts', 'bench/run.ts', 'bench/ceiling.ts'],
  outdir: 'dist',
  outbase: '.',
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node22',
  minify: process.env.MINIFY !== '0',
  sourcemap: true,
  logLevel: 'warning',
  // Packages that load files of their own at run time (pino's transport workers) stay in node_modules, and so do
  // the benchmark's tools. Swagger UI's assets are located by src/plugins/swagger.ts.
  external: ['pino', 'pino-pretty', 'autocannon'],
  // Some bundled CommonJS packages call require() for Node built-ins.
  banner: { js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);" },
})
