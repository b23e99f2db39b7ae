# syntax=docker/dockerfile:1
# oss-callback receiver: verifies Alibaba Cloud OSS upload callbacks, answers them itself
# or forwards them, signed, to your app (see README, "Container").
#   docker build -t oss-callback .
#   docker run --rm -p 8080:8080 --read-only -v oss-callback-data:/data oss-callback
# test/server/image-stage.test.ts reproduces the final stage by hand: keep them in step.
ARG NODE_IMAGE=node:22-bookworm-slim

FROM ${NODE_IMAGE} AS build
WORKDIR /app
# The toolchain better-sqlite3 (the event log's SQLite driver) builds with, when no prebuilt binary fits.
RUN apt-get update && apt-get install -y --no-install-recommends python3 make g++ && rm -rf /var/lib/apt/lists/*
# Dependencies first, so that a change to the sources reuses this layer.
COPY package.json package-lock.json ./
# Scripts off for every package but the driver, whose install script builds its native module.
RUN npm ci --ignore-scripts --no-audit --no-fund && npm rebuild better-sqlite3
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY scripts/copy-demo-assets.js ./scripts/
RUN npm run build

FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
# No dev packages; --ignore-scripts because `prepare` (the build) needs them and the build comes from the stage above.
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force
COPY --from=build /app/dist ./dist
# The event log's driver, built in the stage above (an optional peer dependency: npm ci leaves it out), with its runtime dependencies.
COPY --from=build /app/node_modules/better-sqlite3 ./node_modules/better-sqlite3
COPY --from=build /app/node_modules/bindings ./node_modules/bindings
COPY --from=build /app/node_modules/file-uri-to-path ./node_modules/file-uri-to-path
# PostgreSQL's driver (OSS_CALLBACK_DATABASE_URL=postgres://…), plain JavaScript, and its dependencies not already installed.
COPY --from=build /app/node_modules/pg ./node_modules/pg
COPY --from=build /app/node_modules/pg-connection-string ./node_modules/pg-connection-string
COPY --from=build /app/node_modules/pg-pool ./node_modules/pg-pool
COPY --from=build /app/node_modules/pg-protocol ./node_modules/pg-protocol
COPY --from=build /app/node_modules/pg-types ./node_modules/pg-types
COPY --from=build /app/node_modules/pg-int8 ./node_modules/pg-int8
COPY --from=build /app/node_modules/pgpass ./node_modules/pgpass
COPY --from=build /app/node_modules/postgres-array ./node_modules/postgres-array
COPY --from=build /app/node_modules/postgres-bytea ./node_modules/postgres-bytea
COPY --from=build /app/node_modules/postgres-date ./node_modules/postgres-date
COPY --from=build /app/node_modules/postgres-interval ./node_modules/postgres-interval
# Files stay owned by root and read-only to the app: the root filesystem can be mounted read-only. The event log
# lives on a volume the app owns (forward mode records every callback there before answering it).
RUN mkdir -p /data && chown node:node /data
VOLUME /data
USER node
ENV HOST=0.0.0.0 PORT=8080 OSS_CALLBACK_DATABASE_URL=sqlite:/data/oss-callback.sqlite
EXPOSE 8080
# Slim images have no curl: ask node itself.
HEALTHCHECK --interval=15s --timeout=3s --start-period=5s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.PORT || 8080) + '/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# Exec form: node is PID 1 and gets SIGTERM itself (no shell in between), so in-flight callbacks finish.
CMD ["node", "--enable-source-maps", "dist/cli.js", "serve"]
