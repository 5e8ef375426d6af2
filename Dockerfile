# syntax=docker/dockerfile:1
# Switchboard as one self-contained executable on a distroless base.
#
#   docker build -t switchboard .
#   docker run -v switchboard-data:/data -v "$PWD/examples:/seed:ro" switchboard seed /seed/directory.json
#   docker run -p 3000:3000 -v switchboard-data:/data \
#     -e LIVEKIT_URL=https://... -e LIVEKIT_API_KEY=... -e LIVEKIT_API_SECRET=... switchboard
#
# Seed before serving (or stop the server): the embedded database takes one process at a time.
# Without DATABASE_URL the embedded PostgreSQL (PGlite) keeps its data in the /data volume.

# --- build: npm ci installs the pinned bun from package-lock.json, which compiles the binary.
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json bunfig.toml ./
COPY scripts ./scripts
COPY drizzle ./drizzle
COPY src ./src
# No .git in the build context: `docker build --build-arg SWITCHBOARD_COMMIT=$(git rev-parse --short=12 HEAD) .`
ARG SWITCHBOARD_COMMIT=unknown
RUN npm run build && ./dist/switchboard --version
# The data directory, owned by the distroless "nonroot" user (65532), for the final stage's volume.
RUN mkdir -p /out/data && cp dist/switchboard /out/switchboard && chown 65532:65532 /out/data

# --- run: glibc and CA certificates only; no shell, no package manager, no node_modules.
FROM gcr.io/distroless/base-debian12:nonroot
COPY --from=build /out/switchboard /switchboard
COPY --from=build --chown=65532:65532 /out/data /data
USER 65532:65532
# BUN_JSC_forceRAMSize: the garbage collector sized as for 2 GiB whatever the host has
# (deploy/switchboard.service says why).
ENV NODE_ENV=production \
    HOST=0.0.0.0 \
    PORT=3000 \
    DATA_DIR=/data \
    BUN_JSC_forceRAMSize=2147483648
VOLUME ["/data"]
EXPOSE 3000
# No shell in the image: the binary checks itself (GET /healthz on PORT).
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 CMD ["/switchboard", "healthcheck"]
ENTRYPOINT ["/switchboard"]
CMD ["serve"]
