//! `--matrix`: every pair of router kinds, Alice behind one and Bob behind the other, and Alice
//! and Bob on one LAN, over each transport: how often and how fast they end direct, and by
//! which path; beside it, where both are NAT'd, plain rust-libp2p's scripted punch in the same
//! cell (it only punches over a relay, so a cell with a public peer has nothing to compare).
//!
//! A try: a fresh lab; Alice starts and settles (a NAT verdict, and a relay slot when she
//! is private); then Bob starts, and the time from his start to the first direct connection
//! between them is measured, for at most [`CELL_WAIT`]. The path: **lan** (the first direct
//! connection is between LAN addresses: two hosts behind one router), **mapped** (one peer
//! dialed the other at a port the other's router mapped for it, UPnP-IGD), **introduced** (the
//! punch through the introduction succeeded on either side), **punched** (relay + DCUtR's
//! punch), **dialed** (direct without a punch), **relayed** (only a circuit), or **none**;
//! and, where a circuit opened, the time from Bob's start to the first. The scripted punch
//! gets a fresh lab of the same cell and the same wait (`--no-scripted` leaves it out).
//! `--bootnodes 2` adds a second bootnode in Charlie's host, so each peer learns its NAT's
//! mapping and says it in its record.
//!
//! `--jobs N` runs up to N tries at once, each in its own lab, round by round (every row's
//! first try, then every row's second…), and prints the table so far after each round. A
//! try holds the machine alone in its busy moments ([`quietly`]): the lab's setup, the nodes'
//! starts, the first [`QUIET`] of each wait and the teardown; others overlap it only in the
//! rest of their waits, where a cell that cannot go direct sits out its [`CELL_WAIT`].

use std::time::Duration;

use futures::StreamExt as _;
use tokio::sync::{Mutex, MutexGuard};

use peerfind_proto::v1 as pb;
use peerfind_tests::lab::{Host, Lab, NatMode, Placement, Topology};
use peerfind_tests::process::{field, strip_p2p};
use peerfind_tests::scenario::{self, bootnode, bootnode_in, listen, peer, peer_id};
use serde_json::Value;

use super::{Cli, logged_ms, now_ms, scripted};

mod table;

use table::{Row, print};

/// How long Bob has to end direct with Alice: a punch takes a few round trips; DCUtR's three
/// attempts and peerfind's retry take longer, and a cell that needs them is no success.
pub(crate) const CELL_WAIT: Duration = Duration::from_secs(12);

/// Tries per cell unless `--tries` says otherwise: enough for a success rate to mean
/// something (one try in 20 is 5%).
const TRIES: usize = 20;

/// The router kinds by their names on the command line, in the order the matrix runs them.
pub(crate) const KINDS: [&str; 10] = [
    "none",
    "eim",
    "address-restricted",
    "full-cone",
    "symmetric",
    "symmetric-sequential",
    "symmetric-preserving",
    "udp-blocked",
    "cgnat",
    "upnp",
];

/// The one-LAN cells by their names on the command line.
pub(crate) const LANS: [&str; 2] = ["lan-hairpin", "lan-nohairpin"];

/// What the Bob column shows for a one-LAN cell.
const SAME_LAN: &str = "(same LAN)";

/// A router kind of the matrix, by its name on the command line.
pub(crate) fn kind(name: &str) -> anyhow::Result<Placement> {
    let nat = Placement::BehindNat;
    Ok(match name {
        "none" => Placement::Public,
        "eim" => nat(NatMode::EndpointIndependent),
        "address-restricted" => nat(NatMode::AddressRestricted),
        "full-cone" => nat(NatMode::FullCone),
        "symmetric" => nat(NatMode::Symmetric),
        "symmetric-sequential" => nat(NatMode::SymmetricSequential),
        "symmetric-preserving" => nat(NatMode::SymmetricPreserving),
        "udp-blocked" => nat(NatMode::UdpBlocked),
        "cgnat" => Placement::BehindCgnat(NatMode::EndpointIndependent),
        "upnp" => nat(NatMode::Upnp),
        other => anyhow::bail!("no router kind {other}"),
    })
}

/// A one-LAN cell, by its name on the command line: both behind one eim router.
fn lan(name: &str) -> anyhow::Result<Topology> {
    let shared = Topology::shared_lan(NatMode::EndpointIndependent);
    Ok(match name {
        "lan-hairpin" => shared.with_hairpin(true),
        "lan-nohairpin" => shared.with_hairpin(false),
        other => anyhow::bail!("no one-LAN cell {other}"),
    })
}

/// A cell: what its row says of Alice and Bob, and the lab it runs in.
struct Cell {
    alice: String,
    bob: String,
    topology: Topology,
}

/// Every ordered pair of `kinds` with Alice's not after Bob's (the other order differs only
/// by who starts first), or with `both_orders` every ordered pair; then the one-LAN cells
/// `lans`.
fn cells(kinds: &[String], lans: &[String], both_orders: bool) -> anyhow::Result<Vec<Cell>> {
    let mut cells = Vec::new();
    // `--kinds ''` leaves only the one-LAN cells.
    let kinds: Vec<&String> = kinds.iter().filter(|name| !name.is_empty()).collect();
    for (i, a) in kinds.iter().enumerate() {
        let first = if both_orders { 0 } else { i };
        for b in &kinds[first..] {
            cells.push(Cell {
                alice: a.to_string(),
                bob: b.to_string(),
                topology: Topology::new(kind(a)?, kind(b)?),
            });
        }
    }
    for name in lans.iter().filter(|name| !name.is_empty()) {
        cells.push(Cell {
            alice: name.clone(),
            bob: SAME_LAN.to_owned(),
            topology: lan(name)?,
        });
    }
    Ok(cells)
}

/// How long a try holds the run to itself while it waits for one thing: with `--jobs`,
/// tries overlap only in their waits past this. A start, a verdict and a punch through the
/// introduction end well within it, on a machine no other try is busy on; what ends later
/// waits for a timer (a guess for QUIC's probe timeout, about 1 s; the relay after a failed
/// punch, 2 s) and may meet another try's busy moment on its way.
const QUIET: Duration = Duration::from_millis(500);

/// Awaits `fut` while holding `hold` for at most [`QUIET`]; past that, lets the next try
/// have the machine (a try that waits out [`CELL_WAIT`] does it beside others) and awaits
/// the rest. The caller takes the lock again before its next busy moment.
pub(crate) async fn quietly<T>(
    hold: &mut Option<MutexGuard<'_, ()>>,
    fut: impl Future<Output = T>,
) -> T {
    let mut fut = std::pin::pin!(fut);
    if hold.is_some() {
        tokio::select! {
            out = &mut fut => return out,
            () = tokio::time::sleep(QUIET) => {}
        }
        *hold = None;
    }
    fut.await
}

/// What one job of the run does: a try of peerfind, or of scripted rust-libp2p, in row `row`.
#[derive(Clone, Copy)]
enum Job {
    Peerfind(usize),
    Scripted(usize),
}

/// What a job found.
enum Found {
    Peerfind(usize, Outcome),
    Scripted(usize, Option<f64>),
}

/// Runs every cell over each transport, `--tries` times, and prints the table. The tries go
/// round by round (the first try of every row, then the second…), up to `--jobs` at once,
/// each in its own lab; after each round's worth the table so far is printed, so a run cut
/// short still has every row.
pub(crate) async fn run(cli: &Cli) -> anyhow::Result<()> {
    let tries = cli.tries.unwrap_or(TRIES);
    let mut rows = Vec::new();
    let mut topologies = Vec::new();
    for cell in cells(&cli.kinds, &cli.lans, cli.both_orders)? {
        let natted = |p: Placement| p != Placement::Public;
        let compare = !cli.no_scripted && natted(cell.topology.alice) && natted(cell.topology.bob);
        for t in &cli.transports {
            rows.push(Row {
                alice: cell.alice.clone(),
                bob: cell.bob.clone(),
                transport: t.clone(),
                peerfind: Vec::new(),
                scripted: compare.then(Vec::new),
            });
            topologies.push(cell.topology);
        }
    }
    let mut round = Vec::new();
    for (i, row) in rows.iter().enumerate() {
        round.push(Job::Peerfind(i));
        if row.scripted.is_some() {
            round.push(Job::Scripted(i));
        }
    }
    let what: Vec<(String, String, String)> = rows
        .iter()
        .map(|r| (r.alice.clone(), r.bob.clone(), r.transport.clone()))
        .collect();
    let bootnodes = cli.bootnodes;
    let quiet = Mutex::new(());
    let job = |job: Job| {
        let (what, topologies, quiet) = (&what, &topologies, &quiet);
        async move {
            match job {
                Job::Peerfind(i) => {
                    let (alice, bob, t) = &what[i];
                    let outcome = try_cell(t, topologies[i], bootnodes, quiet)
                        .await
                        .unwrap_or_else(|e| {
                            eprintln!("try failed: {e:#}");
                            Outcome {
                                path: Path::None,
                                ms: None,
                                relayed_ms: None,
                            }
                        });
                    eprintln!("{alice} × {bob} {t}: {outcome:?}");
                    Found::Peerfind(i, outcome)
                }
                Job::Scripted(i) => {
                    let (alice, bob, t) = &what[i];
                    let ms = scripted::punch(topologies[i], t, CELL_WAIT, quiet).await;
                    let said = match &ms {
                        Ok(ms) => format!("direct in {ms:.0} ms"),
                        Err(e) => format!("{e:#}"),
                    };
                    eprintln!("{alice} × {bob} {t}, scripted rust-libp2p: {said}");
                    Found::Scripted(i, ms.ok())
                }
            }
        }
    };
    let plan = (0..tries).flat_map(|_| round.iter().copied());
    let mut found = futures::stream::iter(plan)
        .map(job)
        .buffer_unordered(cli.jobs.max(1));
    let mut done = 0;
    while let Some(f) = found.next().await {
        match f {
            Found::Peerfind(i, outcome) => rows[i].peerfind.push(outcome),
            Found::Scripted(i, ms) => {
                if let Some(scripted) = &mut rows[i].scripted {
                    scripted.push(ms);
                }
            }
        }
        done += 1;
        if done % round.len() == 0 && done < round.len() * tries {
            println!("\nafter {} tries' worth of {tries}:", done / round.len());
            print(&rows);
        }
    }
    print(&rows);
    Ok(())
}

/// How a try ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Path {
    Lan,
    Mapped,
    Guessed,
    Introduced,
    Punched,
    Dialed,
    Relayed,
    None,
}

/// One try: its path, the time to direct when direct, and to the first relayed connection
/// when one opened.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Outcome {
    pub(crate) path: Path,
    pub(crate) ms: Option<f64>,
    pub(crate) relayed_ms: Option<f64>,
}

/// One try of the cell laid out as `topology` over `transport`, with `bootnodes` bootnodes
/// (the second in Charlie's host). Its busy moments hold `quiet` (see [`quietly`]).
async fn try_cell(
    transport: &str,
    topology: Topology,
    bootnodes: u8,
    quiet: &Mutex<()>,
) -> anyhow::Result<Outcome> {
    let mut hold = Some(quiet.lock().await);
    let lab = Lab::up(topology)?;
    let (mut boot, enr) = bootnode(&lab, &[transport]).await?;
    let mut args = listen(transport);
    let mut second = None;
    if bootnodes > 1 {
        let (two, enr_two) = bootnode_in(&lab, Host::Charlie, &[transport], &[]).await?;
        second = Some(two);
        args.extend(["--bootnode".to_owned(), enr_two]);
    }
    let mut alice = peer(&lab, Host::Alice, &enr, &args)?;
    let alice_id = peer_id(&mut alice).await?;
    // Settled: a verdict, and a relay slot when private; behind a router that maps ports,
    // also the mapping's end (verified or not). Behind a router that blocks her transport
    // she never settles: the try goes on, and shows it.
    let upnp = topology.alice == Placement::BehindNat(NatMode::Upnp);
    let settled = alice.until("settled", CELL_WAIT, |s| {
        let slot = s.status.bootnodes.iter().any(|b| b.relay_reserved);
        let mapping = s.status.port_mapping.as_ref().map(|m| m.state());
        let mapped = !upnp
            || matches!(
                mapping,
                Some(pb::PortMappingState::Verified | pb::PortMappingState::Failed)
            );
        match s.nat() {
            pb::NatStatus::Public if mapped => Some(()),
            pb::NatStatus::Private if slot && mapped => Some(()),
            _ => None,
        }
    });
    let _ = quietly(&mut hold, settled).await;
    if hold.is_none() {
        hold = Some(quiet.lock().await);
    }
    let begun = now_ms();
    let mut bob = peer(&lab, Host::Bob, &enr, &args)?;
    let bob_id = peer_id(&mut bob).await?;
    let direct = |id: String| move |l: &Value| field(l, "peer") == id && l["relayed"] == false;
    let first = quietly(&mut hold, async {
        tokio::select! {
            l = alice.wait_for("connected", CELL_WAIT, direct(bob_id.clone())) => l,
            l = bob.wait_for("connected", CELL_WAIT, direct(alice_id.clone())) => l,
        }
    })
    .await;
    if hold.is_none() {
        hold = Some(quiet.lock().await);
    }
    // Decided once both have stopped, so a punch's log line that follows its connection by
    // a moment is read too.
    scenario::stop_all(&mut [&mut bob, &mut alice, &mut boot]).await;
    if let Some(two) = &mut second {
        scenario::stop_all(&mut [two]).await;
    }
    drop(lab);
    drop(hold);
    let mut relayed_ms = None;
    for (node, id) in [(&alice, &bob_id), (&bob, &alice_id)] {
        for line in node.lines_with("connected") {
            if field(&line, "peer") == id.as_str() && line["relayed"] == true {
                let at = logged_ms(&line)? - begun;
                relayed_ms = Some(relayed_ms.map_or(at, |m: f64| m.min(at)));
            }
        }
    }
    let outcome = match first {
        Ok(first) => {
            let mut at = logged_ms(&first)?;
            for (node, id) in [(&alice, &bob_id), (&bob, &alice_id)] {
                for line in node.lines_with("connected") {
                    if direct(id.clone())(&line) {
                        at = at.min(logged_ms(&line)?);
                    }
                }
            }
            let logged = |message: &str| {
                [(&alice, &bob_id), (&bob, &alice_id)]
                    .iter()
                    .any(|(n, id)| {
                        n.lines_with(message)
                            .iter()
                            .any(|l| field(l, "peer") == id.as_str())
                    })
            };
            let lan = field(&first, "remote_addr")
                .split('/')
                .nth(2)
                .and_then(|ip| ip.parse::<std::net::Ipv4Addr>().ok())
                .is_some_and(|ip| ip.is_private());
            // A port its router mapped for it, verified by a dial-back.
            let mapped: Vec<String> = [&alice, &bob]
                .iter()
                .flat_map(|n| n.lines_with("port mapping verified: a dial-back reached us there"))
                .map(|l| strip_p2p(field(&l, "external")).to_owned())
                .collect();
            let to_mapped = [(&alice, &bob_id), (&bob, &alice_id)]
                .iter()
                .any(|(n, id)| {
                    n.lines_with("connected").iter().any(|l| {
                        direct(id.to_string())(l)
                            && mapped.contains(&strip_p2p(field(l, "remote_addr")).to_owned())
                    })
                });
            let path = if lan {
                Path::Lan
            } else if to_mapped {
                Path::Mapped
            } else if logged("port guessed: listening there for the peer's connection") {
                Path::Guessed
            } else if logged("hole punch succeeded") {
                Path::Punched
            } else if logged("hole punch through the introduction succeeded") {
                Path::Introduced
            } else {
                Path::Dialed
            };
            Outcome {
                path,
                ms: Some(at - begun),
                relayed_ms,
            }
        }
        Err(_) => Outcome {
            path: if relayed_ms.is_some() {
                Path::Relayed
            } else {
                Path::None
            },
            ms: None,
            relayed_ms,
        },
    };
    Ok(outcome)
}
