// A process started through npm (`npm start`, `npx config-store watch`) has a `sh -c` between npm and itself. npm
// passes a signal on to that shell, and Debian's dash dies of it without passing it on: the service would outlive
// its stop, reparented to init. So a process npm launched stops, as if sent SIGTERM, once its launcher is gone.

/** How often the parent is looked at: the stop follows the launcher's within this. */
const POLL_MS = 200

/** When `env` says npm launched this process, sends it SIGTERM as soon as its parent process is no longer the one
 * it started under. Answers whether it watches. */
export function stopWithLauncher(env: NodeJS.ProcessEnv = process.env): boolean {
  if (env.npm_command === undefined) return false
  const parent = process.ppid
  const timer = setInterval(() => {
    if (process.ppid === parent) return
    clearInterval(timer)
    process.kill(process.pid, 'SIGTERM')
  }, POLL_MS)
  timer.unref()
  return true
}
