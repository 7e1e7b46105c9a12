#!/usr/bin/env bash
# Builds peerfind, runs a bootnode and a peer on this machine with default settings, and
# shows the peer's record (ENR) gaining the address the bootnode observed, then what both
# nodes say over the status API. Stops both after.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --bin peerfind
bin=target/release/peerfind
dir=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$dir"' EXIT

echo "== bootnode (TCP and QUIC on port 9000)"
"$bin" bootnode --data-dir "$dir/bootnode" 2>"$dir/bootnode.log" &
for _ in $(seq 100); do [ -s "$dir/bootnode/bootnode.txt" ] && break; sleep 0.1; done
cat "$dir/bootnode/bootnode.txt"
bootnode_enr=$(head -n 1 "$dir/bootnode/bootnode.txt")

echo "== peer (port 9001 and API 127.0.0.1:5053, since the bootnode holds 9000 and 5052)"
"$bin" run --data-dir "$dir/peer" --port 9001 --api 127.0.0.1:5053 --bootnode "$bootnode_enr" \
  2>"$dir/peer.log" &
echo "record at start:"
for _ in $(seq 100); do [ -s "$dir/peer/enr" ] && break; sleep 0.1; done
"$bin" enr decode "$(cat "$dir/peer/enr")"
for _ in $(seq 100); do grep -q "local record updated" "$dir/peer.log" && break; sleep 0.1; done
sleep 1
echo
echo "== the peer's log"
cat "$dir/peer.log"
echo
echo "== the peer's record now: the address the bootnode observed, seq + 1"
"$bin" enr decode "$(cat "$dir/peer/enr")"
echo
echo "== the peer's status, from its API (peerfind status --api 127.0.0.1:5053)"
"$bin" status --api 127.0.0.1:5053
echo
echo "== the peers the bootnode knows (peerfind peers, default --api 127.0.0.1:5052)"
"$bin" peers
