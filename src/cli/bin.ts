// The process entry of the command line: bin/config-store.js runs the bundle built from this file.
import { processContext } from './context.js'
import { main } from './index.js'

const code = await main(process.argv.slice(2), processContext())
if (code >= 0) process.exitCode = code
