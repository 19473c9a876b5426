# syntax=docker/dockerfile:1
#
# The Pet Store server: built with the Rust toolchain, run as a non-root user on a distroless base
# (glibc and nothing else: no shell, no package manager). Configured by PETSTORE_* variables.
#
#   docker build -t petstore-ws .
#   docker run --rm -p 8080:8080 petstore-ws

# Bookworm to match the glibc of the distroless runtime (Debian 12).
ARG RUST_IMAGE=rust:1.95-slim-bookworm

FROM ${RUST_IMAGE} AS build
WORKDIR /src

# The workspace as the build reads it: the manifests, both specs (the generator's input), the
# crates, the sources and what they embed (the AsyncAPI page's bundle), and the benches the
# manifest names. The cache mounts keep the registry and the compiled dependencies between image
# builds, so a change to the code recompiles only the workspace's own crates.
COPY Cargo.toml Cargo.lock build.rs openapi.yaml asyncapi.yaml ./
COPY crates crates
COPY assets assets
COPY src src
COPY benches benches
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked --bin petstore-ws \
    && cp target/release/petstore-ws /petstore-ws

# A static busybox, for the health check's `wget` (the runtime image has no shell or client).
FROM busybox:1.37-musl AS probe

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /petstore-ws /usr/local/bin/petstore-ws
COPY --from=probe /bin/busybox /usr/local/bin/busybox
ENV PETSTORE_BIND=0.0.0.0 \
    PETSTORE_PORT=8080 \
    PETSTORE_LOG=info \
    PETSTORE_LOG_FORMAT=json
EXPOSE 8080
# The distroless `nonroot` user.
USER 65532:65532
# Liveness only: readiness (/ready) is for the load balancer to decide on. Plain HTTP: with
# PETSTORE_TLS_CERT set, point an external check at https instead.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["/usr/local/bin/busybox", "sh", "-c", "/usr/local/bin/busybox wget -q -O /dev/null http://127.0.0.1:${PETSTORE_PORT:-8080}/live"]
ENTRYPOINT ["/usr/local/bin/petstore-ws"]
