# syntax=docker/dockerfile:1
# hush: multi-stage build of a small, non-root image.
#
#   docker build -t hush .
#   # environment variables alone (`hush keygen` makes the credentials):
#   docker run --rm -p 6001:6001 -v hush-data:/var/lib/hush \
#     -e HUSH_APPS__MAIN__ID=412001 -e HUSH_APPS__MAIN__KEY=... \
#     -e HUSH_APPS__MAIN__SECRET=... -e HUSH_APPS__MAIN__CLIENT_EVENTS=true hush
#   # or a file:
#   docker run --rm -p 6001:6001 -v hush-data:/var/lib/hush \
#     -v $PWD/hush.toml:/etc/hush/hush.toml:ro -e HUSH_CONFIG=/etc/hush/hush.toml hush
#
# The image serves on 0.0.0.0:6001 (WebSocket + HTTP API) and, when
# [metrics] enabled = true, 0.0.0.0:9601 (/metrics: publish it to a private
# network only). Without any app configured it refuses to start (the
# development app's credentials are public; --allow-dev-app overrides).
# State (the SQLite store): the /var/lib/hush volume. See docs/OPERATIONS.md.

ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-slim-bookworm AS build
WORKDIR /src
# The crates' sources and the lock file; everything else is in .dockerignore.
COPY Cargo.toml Cargo.lock ./
COPY config ./config
COPY crates ./crates
# ring (TLS) needs a C compiler: the rust image has gcc and libc6-dev.
# Stripped: no symbols or line tables in the shipped binary (about 15 MB
# instead of 93 MB); build without these two variables to debug.
ENV CARGO_PROFILE_RELEASE_STRIP=symbols \
    CARGO_PROFILE_RELEASE_DEBUG=false
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --locked --release -p hush --bin hush \
 && install -D -m 0755 target/release/hush /out/hush \
 && mkdir -p /out/state

# glibc, CA certificates and a non-root user (uid 65532), no shell.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/hush /usr/local/bin/hush
COPY --from=build --chown=65532:65532 /out/state /var/lib/hush
# Only what the image needs; everything else from HUSH_* variables at run
# time (crates/hush/tests/container_env.rs runs hush with exactly these).
ENV HUSH_SERVER__HOST=0.0.0.0 \
    HUSH_SERVER__DATA_DIR=/var/lib/hush \
    HUSH_METRICS__HOST=0.0.0.0
USER 65532:65532
WORKDIR /var/lib/hush
VOLUME ["/var/lib/hush"]
EXPOSE 6001 9601
# `hush health` exits 0 when GET /up answers 200 (set HUSH_URL when the port
# or scheme differs, e.g. https://127.0.0.1:6001 with [server.tls]).
HEALTHCHECK --interval=10s --timeout=5s --start-period=5s --retries=3 \
    CMD ["/usr/local/bin/hush", "health"]
# SIGTERM drains (clients get 4200); give it drain_delay + shutdown_timeout.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/hush"]
CMD ["serve"]
