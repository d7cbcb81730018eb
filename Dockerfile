# mediaflow service image. Build deps are for better-sqlite3, which compiles when no prebuilt binary fits.
FROM node:22-bookworm-slim AS build
RUN apt-get update && apt-get install -y --no-install-recommends python3 make g++ && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json tsconfig.json ./
COPY src ./src
COPY bin ./bin
COPY schema ./schema
RUN npm ci --no-audit --no-fund && npm prune --omit=dev

FROM node:22-bookworm-slim
# glibc's malloc as bin/mediaflow tunes it (measured against jemalloc in docs/BENCHMARKS.md, Allocator).
ENV NODE_ENV=production \
    MEDIAFLOW_DATA=/data
WORKDIR /app
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY bin ./bin
COPY schema ./schema
COPY package.json ./
COPY pipelines ./pipelines
# The dashboard's page (no build step: served as it is, with Preact and htm from node_modules).
COPY web ./web
VOLUME ["/data"]
EXPOSE 8080
# bin/mediaflow: the launcher that sets the allocator, then runs node on bin/mediaflow.js.
ENTRYPOINT ["bin/mediaflow"]
CMD ["run", "--pipelines", "/app/pipelines", "--host", "0.0.0.0"]
