# syntax=docker/dockerfile:1
# hush: multi-stage build of a small, non-root image.
#
#   docker build -t hush .
#   docker run --rm -p 6001:6001 -v $PWD/hush.toml:/etc/hush/hush.toml:ro hush
#
# The image serves on 0.0.0.0:6001 (WebSocket + HTTP API) and, when
# [metrics] enabled = true, 0.0.0.0:9601 (/metrics: publish it to a private
# network only). Configuration: /etc/hush/hush.toml and HUSH_* variables.
# State (the SQLite store, when configured): the /var/lib/hush volume.
# See docs/OPERATIONS.md.

ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-slim-bookworm AS build
WORKDIR /src
# The crates' sources and the lock file; everything else is in .dockerignore.
COPY Cargo.toml Cargo.lock ./
COPY config ./config
COPY crates ./crates
# ring (TLS) needs a C compiler: the rust image has gcc and libc6-dev.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --locked --release -p hush --bin hush \
 && install -D -m 0755 target/release/hush /out/hush \
 && mkdir -p /out/state

# glibc, CA certificates and a non-root user (uid 65532), no shell.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/hush /usr/local/bin/hush
COPY --from=build --chown=65532:65532 /out/state /var/lib/hush
ENV HUSH_CONFIG=/etc/hush/hush.toml \
    HUSH_SERVER__HOST=0.0.0.0 \
    HUSH_METRICS__HOST=0.0.0.0
USER 65532:65532
WORKDIR /var/lib/hush
VOLUME ["/var/lib/hush"]
EXPOSE 6001 9601
# SIGTERM drains (clients get 4200); give it drain_delay + shutdown_timeout.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/hush"]
CMD ["serve"]
