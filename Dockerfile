# Multi-stage: build with the dev tools, run with production dependencies only, as the unprivileged `node` user
# (uid 1000). Node 24 LTS, pinned.
FROM node:24.22.3-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts
COPY src src
COPY routes routes
COPY stores stores
COPY scripts scripts
COPY bench bench
# The benchmark is built with the rest (one esbuild run) but not shipped.
RUN npm run build && rm -rf dist/bench && npm prune --omit=dev

FROM node:24.22.3-bookworm-slim
WORKDIR /app
ENV HOST=0.0.0.0 PORT=8080 CONFIG_FILES_DIR=/data
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules node_modules
COPY --from=build /app/dist dist
COPY bin bin
# `config-store` on the PATH, for `docker compose exec config-store config-store check`. /data holds the files layer,
# /backups is where `config-store export --out /backups/…` may write: both belong to `node`.
RUN chmod +x bin/config-store.js bin/healthcheck \
  && ln -s /app/bin/config-store.js /usr/local/bin/config-store \
  && mkdir -p /data /backups && chown node:node /data /backups
USER node
VOLUME ["/data", "/backups"]
EXPOSE 8080
# A bash probe of /health on HOST and PORT: no Node process started every 10 s.
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 CMD ["/app/bin/healthcheck"]
# node itself, not `npm start`: npm's shell would not pass SIGTERM on, and the graceful close would never run.
# Source maps: stack traces point at the TypeScript source.
CMD ["node", "--enable-source-maps", "dist/src/cli/bin.js", "serve"]
