# meshflow's image: the compiled CLI and worker, production node_modules and the pinned tools
# (istioctl, kube-apiserver/etcd, kwok, ...) built from the package registries by `meshflow setup`.
# Base images are pinned by tag; pin them by digest as your registry policy asks (none could be
# resolved where this file was written).

# Go toolchain for `meshflow setup` (every pinned tool is a Go build but the test server).
FROM golang:1.26.8-bookworm AS go

FROM node:24.22.3-bookworm AS build
COPY --from=go /usr/local/go /usr/local/go
ENV PATH=/usr/local/go/bin:$PATH \
    CGO_ENABLED=0 \
    MESHFLOW_CACHE_DIR=/opt/meshflow/cache
# `meshflow setup` builds every pinned tool, the time-skipping test server (Java, Maven) included.
RUN apt-get update \
 && apt-get install -y --no-install-recommends default-jdk-headless maven \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci
COPY tsconfig.json ./
COPY bin ./bin
COPY scripts ./scripts
COPY src ./src
COPY tools ./tools
RUN npm run build
# The cold build takes a while (kube-apiserver: 10-20 min on 2 cores); the cache mounts keep Go's
# module and build caches between image builds.
RUN --mount=type=cache,target=/root/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    node dist/cli/main.js setup
RUN npm prune --omit=dev

FROM node:24.22.3-bookworm-slim AS runtime
ENV NODE_ENV=production \
    MESHFLOW_CACHE_DIR=/opt/meshflow/cache \
    MESHFLOW_STATE_DIR=/var/lib/meshflow
WORKDIR /app
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY --from=build /app/bin ./bin
COPY --from=build /app/tools ./tools
COPY --from=build /opt/meshflow/cache/tools /opt/meshflow/cache/tools
RUN mkdir -p /var/lib/meshflow && chown node:node /var/lib/meshflow
# The node image's unprivileged user (uid 1000).
USER node
VOLUME ["/var/lib/meshflow"]
ENTRYPOINT ["node", "dist/cli/main.js"]
# Run as it is, the image is a worker (`meshflow worker`: TEMPORAL_ADDRESS, TLS or API key from the
# environment; SIGTERM stops it gracefully); `docker run meshflow:0.1.0 doctor` reports its tools.
CMD ["worker"]
