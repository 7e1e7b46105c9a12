# peerfind in a container: `docker build -t peerfind .` (or `podman build`).
#
#   docker run --rm peerfind --help
#   docker run -d -p 9000:9000/tcp -p 9000:9000/udp -v boot:/data peerfind bootnode
#   docker run -d -p 9000:9000/tcp -p 9000:9000/udp -v peer:/data -e PEERFIND_BOOTNODES=enr:… peerfind run
#   docker run -d -v peer:/data -e PEERFIND_BOOTNODES=http://boot.example:9100/enr peerfind run
#
# Stages: `builder` compiles the release binary, `router` is the NAT router of compose.yaml,
# and the last, default one is the runtime image.

FROM docker.io/library/rust:1.95-slim-bookworm AS builder
WORKDIR /src
COPY . .
# The caches keep the registry and the build between builds on the same machine; the binary
# is copied out of them in the same step, without its symbol table (a few MB nobody reads).
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p peerfind \
    && strip --strip-all -o /usr/local/bin/peerfind target/release/peerfind

# A NAT router for compose.yaml: the nftables rules of the project's NAT lab, in the mode
# NAT_MODE names (eim, symmetric or full-cone). Needs NET_ADMIN and ip_forward=1.
FROM docker.io/library/debian:bookworm-slim AS router
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends nftables iproute2 \
    && rm -rf /var/lib/apt/lists/*
COPY container/router.nft container/router.sh /usr/local/share/peerfind-router/
ENTRYPOINT ["/usr/local/share/peerfind-router/router.sh"]

FROM docker.io/library/debian:bookworm-slim
RUN useradd --system --user-group --uid 10001 --home-dir /data --no-create-home peerfind \
    && mkdir /data && chown peerfind:peerfind /data && chmod 0700 /data
COPY --from=builder /usr/local/bin/peerfind /usr/local/bin/peerfind
# The identity and the last record live in /data: keep it on a volume to keep the node's
# PeerId and to let its record's seq grow across restarts.
ENV PEERFIND_DATA_DIR=/data
# The metrics server (`/metrics`) and the probes beside it (`/healthz`, `/readyz`, and `/enr`:
# the record a peer's `--bootnode http://HOST:9100/enr` fetches) are on in the image, on
# 9100; `-e PEERFIND_METRICS=127.0.0.1:9100` keeps them inside the container.
ENV PEERFIND_METRICS=0.0.0.0:9100
VOLUME ["/data"]
USER peerfind:peerfind
WORKDIR /data
EXPOSE 9000/tcp 9000/udp 9100/tcp
# Asks the node itself over HTTP, on the address PEERFIND_METRICS names (loopback for
# 0.0.0.0): `peerfind probe` exits 1, with the reason, when `/healthz` does not answer 200.
HEALTHCHECK --interval=15s --timeout=15s --start-period=10s --retries=3 \
    CMD ["peerfind", "probe"]
ENTRYPOINT ["peerfind"]
CMD ["--help"]
