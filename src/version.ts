// The one version number: package.json's, shown by `config-store --version`, GET /version, /health, the start-up
// line and openapi.yaml.
import pkg from '../package.json' with { type: 'json' }

export const VERSION: string = pkg.version
