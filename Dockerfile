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

# Dependencies first, against placeholder sources: this layer is rebuilt only when a manifest or
# the lock file changes, not when the code does.
COPY Cargo.toml Cargo.lock ./
COPY codegen/Cargo.toml codegen/
RUN mkdir -p src codegen/src benches \
    && echo 'fn main() {}' > build.rs \
    && echo 'fn main() {}' > src/main.rs \
    && echo 'fn main() {}' > benches/get_pet_by_id.rs \
    && touch src/lib.rs codegen/src/lib.rs \
    && cargo build --release --locked --bin petstore-ws \
    && rm -rf src codegen/src build.rs

# The real sources. Touching the crate roots makes cargo rebuild what the placeholders stood for
# (COPY keeps the files' own, older modification times).
COPY build.rs openapi.yaml asyncapi.yaml ./
COPY codegen/src codegen/src
COPY src src
COPY benches benches
RUN touch build.rs src/main.rs src/lib.rs codegen/src/lib.rs \
    && cargo build --release --locked --bin petstore-ws \
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
