// The Node versions the service supports (README "Run it"): 22 and newer. An older one still runs it, with one
// warning line, rather than a refusal: npm's EBADENGINE block said it twice on every first `npx`, and said nothing
// under `node dist/…` or in a container.

export const MIN_NODE_MAJOR = 22

/** The warning line for `version` (`process.version`), or undefined when it is supported. */
export function nodeVersionWarning(version: string): string | undefined {
  const major = Number(/^v?(\d+)\./.exec(version)?.[1])
  if (!(major < MIN_NODE_MAJOR)) return undefined
  return `warning: Node ${version} is not supported (${MIN_NODE_MAJOR} or newer; CI tests 24): it is past its end of life and gets no security fixes, and dependencies (cookie, content-disposition) declare ${MIN_NODE_MAJOR}+, so a fault on it will not be fixed here`
}
