# syntax=docker/dockerfile:1

# Build stage: dev dependencies and the TypeScript compiler.
FROM node:22-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
# The prepare script builds, and the sources are not here yet: build after copying them.
RUN npm ci --ignore-scripts
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build

# Final stage: production dependencies and dist/ only.
FROM node:22-slim
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts && npm cache clean --force
COPY --from=build /app/dist ./dist
USER node
ENV HOST=0.0.0.0 PORT=8080
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.PORT||8080)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
# Exec form: signals reach node, which shuts down gracefully.
CMD ["node", "--enable-source-maps", "dist/cli.js", "serve"]
