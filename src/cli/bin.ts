// The process entry of the command line: bin/config-store.js runs the bundle built from this file.
import { processContext } from './context.js'
import { main } from './index.js'
import { stopWithLauncher } from './launcher.js'
import { nodeVersionWarning } from './node-version.js'

const unsupported = nodeVersionWarning(process.version)
if (unsupported !== undefined) process.stderr.write(`config-store: ${unsupported}\n`)
stopWithLauncher()
const code = await main(process.argv.slice(2), processContext())
if (code >= 0) process.exitCode = code
