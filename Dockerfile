# syntax=docker/dockerfile:1
# maskflow in a container: one glibc-linked binary (the wasm transform module is embedded), run
# as an unprivileged user. See docs/deploy.md. Not built by CI here (no Docker engine on the
# project's machines): docs/deploy.md says what was and was not checked.
#
#   DOCKER_BUILDKIT=1 docker build -t maskflow .
#   docker run --rm -e MASKFLOW_KEY="$(cat maskflow.key)" -e DATABASE_URL=... \
#     -e MASKFLOW_QUEUE_URL=https://sqs.eu-west-1.amazonaws.com/123456789012/login-events maskflow

ARG RUST_IMAGE=rust:1.95-bookworm
# The runtime must have the builder's glibc or newer: keep both on the same Debian release.
ARG RUNTIME_IMAGE=debian:bookworm-slim

# ---- build --------------------------------------------------------------------------------------
FROM ${RUST_IMAGE} AS build
WORKDIR /src
# Dependency caching: BuildKit cache mounts, not the "copy the manifests, build stub sources,
# then copy the real sources" trick. The workspace has six members (transform, host, tests,
# bench, integrations/vector/conformance, integrations/node) and cargo needs every member's
# manifest and a target in each to load the workspace at all, and the host embeds host/module/: the stub layer would have to mirror
# all of that and silently go stale when a member is added. Cache mounts keep cargo's registry
# and target/ between builds whatever the layout, so a source change recompiles only the
# crates that changed (incremental across builds, not just per dependency layer). The cost:
# the cache lives in the local builder, not in the image layers, so a fresh CI runner builds
# from scratch unless its builder is persistent. .dockerignore keeps target/, keys and local
# state out of the context, so COPY . . changes only when sources do.
COPY . .
RUN --mount=type=cache,id=maskflow-cargo-registry,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,id=maskflow-cargo-git,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,id=maskflow-target,target=/src/target,sharing=locked \
    cargo build --release --locked -p maskflow-host \
 && install -D -m 0755 target/release/maskflow /out/maskflow
# (The binary is copied out inside the same RUN: a cache mount is not part of the layer.)

# ---- runtime ------------------------------------------------------------------------------------
FROM ${RUNTIME_IMAGE} AS runtime
# ca-certificates: the AWS endpoints' TLS and `sslrootcert=system` for PostgreSQL. bash (part of
# every Debian image) runs the health check; no curl or wget is installed. Not pinned: the CA
# bundle should be the release's current one, security updates included.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 maskflow \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin maskflow \
 && install -d -o 10001 -g 10001 -m 0700 /var/lib/maskflow/key /var/cache/maskflow
# /var/lib/maskflow/key: where docker-compose.yml's keygen service writes the key. An empty named
# volume mounted there starts with this directory's owner and mode, so the unprivileged user
# can create the key file (0600) in it.

COPY --from=build /out/maskflow /usr/local/bin/maskflow
COPY --chmod=0755 deploy/docker/healthcheck /usr/local/bin/maskflow-healthcheck

LABEL org.opencontainers.image.title="maskflow" \
      org.opencontainers.image.description="SQS login events -> masked rows in PostgreSQL, exactly once" \
      org.opencontainers.image.licenses="Apache-2.0"

# /metrics, /healthz and /readyz are served only when a metrics address is set; the image sets
# one so that HEALTHCHECK and orchestrator probes have something to ask. Override it with an
# empty value to turn the listener off (the health check then reports healthy: nothing to ask).
ENV MASKFLOW_METRICS_ADDR=0.0.0.0:9898
EXPOSE 9898

# The compiled-module cache (--module-cache): a restart loads the compiled module instead of
# compiling it again (about 0.2 CPU s). The user has no home; this directory is its own (0700).
ENV MASKFLOW_MODULE_CACHE=/var/cache/maskflow/modules

# A fixed numeric UID/GID: Kubernetes' runAsNonRoot can verify a number, not a name.
USER 10001:10001

# GET /healthz over bash's /dev/tcp (no curl in the image). /healthz is liveness (the process and
# its loop are alive); /readyz (PostgreSQL and SQS reachable) is for orchestrators' readiness.
# start-period covers the start-up checks (MASKFLOW_STARTUP_TIMEOUT, default 30 s).
HEALTHCHECK --interval=15s --timeout=5s --start-period=40s --retries=3 \
  CMD ["/usr/local/bin/maskflow-healthcheck", "/healthz"]

# SIGTERM: stop receiving, commit and delete the batches in flight, exit 0. maskflow handles it
# itself as PID 1 and starts no child processes, so no init is needed. Give it time to finish:
# `docker stop -t 60`, compose's stop_grace_period (docker-compose.yml), Kubernetes'
# terminationGracePeriodSeconds (deploy/kubernetes/deployment.yaml).
STOPSIGNAL SIGTERM
ENTRYPOINT ["maskflow"]
CMD ["run"]
