#!/bin/sh
# Entry point of the router image (the Dockerfile's `router` stage), two uses:
#
#   router.sh                    a NAT router: loads router.nft in mode $NAT_MODE (eim,
#                                symmetric, symmetric-sequential, symmetric-preserving,
#                                full-cone, address-restricted, udp-blocked or upnp (the
#                                chains only: run miniupnpd beside it); default eim)
#                                for the LAN that holds $LAN_HOST, the host behind it (the
#                                first one, when there are several), hairpinning when
#                                $HAIRPIN is 1 (default 0). A carrier-grade NAT is an eim
#                                router whose LAN host is a home router. Needs NET_ADMIN and
#                                net.ipv4.ip_forward=1 (compose sets both).
#   router.sh gateway ADDRESS    a LAN host's network: routes everything through the router at
#                                ADDRESS; a peerfind container joins this container's network.
#
# Then it waits until it is stopped (SIGTERM ends it at once).
set -eu
here=$(dirname "$0")

if [ "${1:-}" = "gateway" ]; then
  ip route replace default via "${2:?gateway ADDRESS}"
else
  mode=${NAT_MODE:-eim}
  case "$mode" in
    eim | symmetric | symmetric-sequential | symmetric-preserving | full-cone | address-restricted | udp-blocked | upnp) ;;
    *) echo "NAT_MODE must be eim, symmetric, symmetric-sequential, symmetric-preserving, full-cone, address-restricted, udp-blocked or upnp, not $mode" >&2; exit 1 ;;
  esac
  case "${HAIRPIN:-0}" in
    0) hairpin=0 ;;
    1) hairpin=1 ;;
    *) echo "HAIRPIN must be 0 or 1, not $HAIRPIN" >&2; exit 1 ;;
  esac
  lan_host=${LAN_HOST:?set LAN_HOST to the address of the host behind this router}
  # The LAN interface is the one that reaches the LAN host; the WAN is the other one with an
  # IPv4 address (tunnel devices a namespace may hold have none).
  lan=$(ip -o route get "$lan_host" | sed -n 's/.* dev \([^ ]*\).*/\1/p')
  wan=$(ip -o -4 addr show | awk '{ print $2 }' | grep -v -x -e lo -e "$lan" | head -n 1)
  [ -n "$lan" ] && [ -n "$wan" ] || { echo "cannot tell the LAN and WAN interfaces apart" >&2; exit 1; }
  wan_addr=$(ip -o -4 addr show dev "$wan" | awk '{ split($4, a, "/"); print a[1]; exit }')
  {
    echo "define wan = \"$wan\""
    echo "define wan_addr = $wan_addr"
    echo "define lan = \"$lan\""
    echo "define lan_host = $lan_host"
    awk -v mode="$mode" -v hairpin="$hairpin" '
      /#hairpin$/ { if (!hairpin) next }
      /#mode:/ {
        n = split(substr($0, index($0, "#mode:") + 6), modes, " ")
        keep = 0
        for (i = 1; i <= n; i++) if (modes[i] == mode) keep = 1
        if (!keep) next
      }
      { print }' "$here/router.nft"
  } | nft -f -
  echo "router: $mode NAT from $lan ($lan_host) to $wan ($wan_addr), hairpin $hairpin"
fi

trap 'exit 0' TERM INT
sleep infinity &
wait
