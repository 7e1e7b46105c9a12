// A js-libp2p peer for peerfind's interop tests: identify, ping, circuit relay v2 (client, and
// server with `listen --relay`) and DCUtR over TCP and QUIC (`@chainsafe/libp2p-quic` 2, the
// release for libp2p 3; it asks for Node 22 but runs on 20), with js-libp2p's default ed25519
// key. It
// prints one JSON object per line for each thing it observed, the same events as the Rust
// probe (tests/src/bin/interop-rust.rs): listening, reserved, connected, identify, ping,
// error, done.
//
//   node probe.mjs dial /ip4/127.0.0.1/tcp/9000/p2p/16Uiu2...   identify + ping, then exit
//   node probe.mjs listen --listen /ip4/127.0.0.1/tcp/0 --relay  a plain relay / bootnode
//   node probe.mjs reserve /ip4/127.0.0.1/tcp/9000/p2p/16Uiu2... reserve, answer circuits

// Node 20 lacks Promise.withResolvers, which libp2p 3 uses: polyfill it before importing.
if (typeof Promise.withResolvers !== 'function') {
  Promise.withResolvers = function () {
    let resolve, reject
    const promise = new Promise((res, rej) => { resolve = res; reject = rej })
    return { promise, resolve, reject }
  }
}

const { createLibp2p } = await import('libp2p')
const { tcp } = await import('@libp2p/tcp')
const { quic } = await import('@chainsafe/libp2p-quic')
const { noise } = await import('@chainsafe/libp2p-noise')
const { yamux } = await import('@chainsafe/libp2p-yamux')
const { identify } = await import('@libp2p/identify')
const { ping } = await import('@libp2p/ping')
const { circuitRelayTransport, circuitRelayServer } = await import('@libp2p/circuit-relay-v2')
const { dcutr } = await import('@libp2p/dcutr')
const { multiaddr } = await import('@multiformats/multiaddr')

/** How long one command may take before it reports failure and exits with 1. */
const DEADLINE_MS = 30_000

const emit = (obj) => process.stdout.write(JSON.stringify(obj) + '\n')

function parse (argv) {
  const [command, ...rest] = argv
  const opts = { command, positional: [], listen: [], relay: false, hold: false }
  for (let i = 0; i < rest.length; i++) {
    if (rest[i] === '--listen') opts.listen.push(rest[++i])
    else if (rest[i] === '--relay') opts.relay = true
    else if (rest[i] === '--hold') opts.hold = true
    else opts.positional.push(rest[i])
  }
  return opts
}

async function node ({ listen = [], relay = false }) {
  const services = {
    identify: identify(),
    ping: ping(),
    dcutr: dcutr()
  }
  if (relay) services.relay = circuitRelayServer()
  const n = await createLibp2p({
    addresses: { listen },
    transports: [tcp(), quic(), circuitRelayTransport()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    services
  })
  n.addEventListener('peer:identify', (evt) => {
    const d = evt.detail
    emit({
      event: 'identify',
      peer: d.peerId.toString(),
      agent: d.agentVersion ?? '',
      protocol_version: d.protocolVersion ?? '',
      protocols: d.protocols,
      listen_addrs: d.listenAddrs.map(String),
      observed_addr: d.observedAddr ? String(d.observedAddr) : '',
      relayed: d.connection.remoteAddr.toString().includes('/p2p-circuit')
    })
  })
  n.addEventListener('connection:open', (evt) => {
    const c = evt.detail
    emit({ event: 'connected', peer: c.remotePeer.toString(), addr: c.remoteAddr.toString(), relayed: c.remoteAddr.toString().includes('/p2p-circuit') })
  })
  let reserved = false
  n.addEventListener('self:peer:update', () => {
    for (const a of n.getMultiaddrs()) {
      const s = a.toString()
      if (s.includes('/p2p-circuit') && !reserved) {
        reserved = true
        emit({ event: 'reserved', addr: s })
      }
    }
  })
  return n
}

async function dial (addr, hold) {
  const target = multiaddr(addr)
  const targetPeer = addr.split('/p2p/').pop()
  const n = await node({})
  emit({ event: 'started', peer: n.peerId.toString() })
  const seen = new Set()
  const identified = new Promise((resolve) => {
    n.addEventListener('peer:identify', (evt) => {
      if (evt.detail.peerId.toString() === targetPeer) { seen.add('identify'); resolve() }
    })
  })
  const timer = setTimeout(() => {
    emit({ event: 'done', ok: false, seen: [...seen] })
    process.exit(1)
  }, DEADLINE_MS)
  try {
    await n.dial(target)
    const rtt = await n.services.ping.ping(target)
    seen.add('ping')
    emit({ event: 'ping', peer: targetPeer, rtt_us: Math.round(rtt * 1000) })
  } catch (e) {
    emit({ event: 'error', what: 'dial', peer: targetPeer, error: String(e?.message ?? e) })
  }
  await identified
  if (!seen.has('ping')) return
  clearTimeout(timer)
  emit({ event: 'done', ok: true })
  if (!hold) {
    await n.stop()
    process.exit(0)
  }
}

async function main () {
  const opts = parse(process.argv.slice(2))
  switch (opts.command) {
    case 'dial':
      await dial(opts.positional[0], opts.hold)
      break
    case 'listen': {
      const n = await node({ listen: opts.listen, relay: opts.relay })
      emit({ event: 'started', peer: n.peerId.toString() })
      for (const a of n.getMultiaddrs()) emit({ event: 'listening', addr: a.toString() })
      break
    }
    case 'reserve': {
      const relay = opts.positional[0]
      const n = await node({ listen: [...opts.listen, relay + '/p2p-circuit'] })
      emit({ event: 'started', peer: n.peerId.toString() })
      break
    }
    default:
      process.stderr.write('usage: probe.mjs dial ADDR | listen --listen ADDR [--relay] | reserve RELAY_ADDR\n')
      process.exit(2)
  }
}

main().catch((e) => {
  emit({ event: 'error', what: 'probe', error: String(e?.stack ?? e) })
  process.exit(1)
})
