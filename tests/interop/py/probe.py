"""A py-libp2p peer for peerfind's interop tests: dials a peer over TCP or QUIC, runs identify
and ping on the connection, and prints one JSON object per line for each thing it observed,
the same events as the Rust probe (tests/src/bin/interop-rust.rs): started (its own PeerId),
identify, ping, error, done; and one pong per ping. Exits 1 when identify or ping did not
succeed within 30 s.

    python probe.py dial /ip4/127.0.0.1/tcp/9000/p2p/16Uiu2...
    python probe.py dial /ip4/127.0.0.1/udp/9000/quic-v1/p2p/16Uiu2...
    python probe.py dial ADDR --hold     stay connected after success, until killed
    python probe.py dial ADDR --pings 3  three pings on one stream, as py-libp2p's
                                         PingService does (go- and rust-libp2p reuse
                                         their ping streams too)
"""

import json
import logging
import os
import sys

import multiaddr
import trio

from libp2p import new_host
from libp2p.host.ping import ID as PING, perform_ping_roundtrip
from libp2p.identity.identify.identify import ID as IDENTIFY
from libp2p.identity.identify.pb.identify_pb2 import Identify
from libp2p.peer.peerinfo import info_from_p2p_addr
from libp2p.utils.varint import read_length_prefixed_protobuf

# How long one dial may take before it reports failure.
DEADLINE_S = 30


def emit(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def causes(e):
    """An exception and what it was raised from, outermost first: py-libp2p wraps the error
    that tells what went wrong (a closed stream, a bad frame) in ones that tell where."""
    chain, seen = [], set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        chain.append(f"{type(e).__name__}: {e}")
        e = e.__cause__ or e.__context__
    return " <- ".join(chain)


def addr_text(raw):
    try:
        return str(multiaddr.Multiaddr(raw))
    except Exception:  # an address py-multiaddr cannot print is still shown
        return raw.hex()


async def identify(host, peer):
    stream = await host.new_stream(peer, [IDENTIFY])
    try:
        data = await read_length_prefixed_protobuf(stream, use_varint_format=True)
    finally:
        await stream.close()
    msg = Identify()
    msg.ParseFromString(data)
    emit(
        {
            "event": "identify",
            "peer": str(peer),
            "agent": msg.agent_version,
            "protocol_version": msg.protocol_version,
            "protocols": list(msg.protocols),
            "listen_addrs": [addr_text(a) for a in msg.listen_addrs],
            "observed_addr": addr_text(msg.observed_addr),
        }
    )


async def ping(host, peer, pings):
    """`pings` pings on one stream, each waiting for its pong: a pong line each, then the ping
    line with the last round trip."""
    stream = await host.new_stream(peer, [PING])
    try:
        for i in range(pings):
            rtt_ms = await perform_ping_roundtrip(stream)
            emit({"event": "pong", "peer": str(peer), "i": i, "rtt_us": rtt_ms * 1000})
    finally:
        await stream.close()
    emit({"event": "ping", "peer": str(peer), "rtt_us": rtt_ms * 1000, "pings": pings})


async def dial(addr, hold, pings):
    target = multiaddr.Multiaddr(addr)
    info = info_from_p2p_addr(target)
    quic = "quic-v1" in addr
    listen = multiaddr.Multiaddr(
        "/ip4/127.0.0.1/udp/0/quic-v1" if quic else "/ip4/127.0.0.1/tcp/0"
    )
    host = new_host(enable_quic=quic, listen_addrs=[listen])
    emit({"event": "started", "peer": str(host.get_id())})
    seen = []
    async with host.run(listen_addrs=[listen]):
        with trio.move_on_after(DEADLINE_S):
            try:
                await host.connect(info)
                await identify(host, info.peer_id)
                seen.append("identify")
                await ping(host, info.peer_id, pings)
                seen.append("ping")
            except Exception as e:  # report what failed, as the other probes do
                emit({"event": "error", "what": "dial", "peer": str(info.peer_id),
                      "error": causes(e)})
        ok = seen == ["identify", "ping"]
        emit({"event": "done", "ok": ok, "seen": seen})
        if ok and hold:
            await trio.sleep_forever()
        # py-libp2p's teardown can hang for many seconds (QUIC especially): what was to be
        # seen is printed, so leave at once.
        os._exit(0 if ok else 1)


def main():
    logging.basicConfig(level=logging.CRITICAL)
    args = sys.argv[1:]
    hold = "--hold" in args
    args = [a for a in args if a != "--hold"]
    pings = 1
    if "--pings" in args:
        at = args.index("--pings")
        try:
            pings = int(args[at + 1])
        except (IndexError, ValueError):
            pings = 0
        del args[at : at + 2]
    if len(args) != 2 or args[0] != "dial" or pings < 1:
        sys.stderr.write("usage: probe.py dial ADDR [--hold] [--pings N]\n")
        sys.exit(2)
    ok = trio.run(dial, args[1], hold, pings)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
