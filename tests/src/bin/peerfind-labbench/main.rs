//! How fast peerfind finds out and connects across the NAT lab, next to plain rust-libp2p's
//! scripted hole punch measured in the same run (`scripted-punch`):
//!
//! - **verdict**: from Alice's first bootnode connection to her first NAT status (`public` or
//!   `private`), with Alice on the public segment, behind an endpoint-independent NAT and
//!   behind a symmetric NAT, each also with 5% loss on her access link; a wrong verdict, or a
//!   change within `--hold` after the first, counts as wrong;
//! - **eim/eim direct**: Alice behind an eim NAT is up, flagged and holds her relay slot; from
//!   Bob's start (behind another eim NAT) to the first direct connection between them;
//! - **charlie direct**: Alice as above; from public Charlie's start to his first direct
//!   connection with her;
//! - **scripted rust-libp2p**: the same two NATs and the bootnode as the relay; from the
//!   dialer's start to its direct connection, the relay's address and the listener's PeerId
//!   given in advance.
//!
//! - **matrix** (`--matrix`, alone): every pair of `--kinds` of router, Alice behind one and
//!   Bob behind the other, and Alice and Bob on one LAN (`--lans`), with scripted rust-libp2p
//!   in the cells where both are NAT'd; see `matrix.rs`.
//!
//! Every scenario runs over TCP and QUIC (each node listens on that one transport) at each
//! `--delays` one-way delay on every access link (bootnode, Charlie, Alice, Bob), so a round
//! trip between two hosts is 4 × the delay. Each try gets a fresh lab. Needs root.
//!
//! ```text
//! cargo build --release -p peerfind -p peerfind-tests --bins
//! target/release/peerfind-labbench --tries 5 --loss-tries 20
//! ```
//!
//! It prints what it measured and asserts nothing: speed is read here, not in the tests.

mod matrix;
mod scripted;

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use clap::Parser;
use peerfind_tests::lab::{Host, Impairment, Lab, NatMode, Placement, Topology};
use peerfind_tests::process::field;
use peerfind_tests::scenario::{self, bootnode, listen, peer, peer_id};
use serde_json::Value;

/// Bound on each wait of a try: a try that takes longer counts as failed.
const TRY_WAIT: Duration = Duration::from_secs(30);

const EIM: Placement = Placement::BehindNat(NatMode::EndpointIndependent);
const SYMMETRIC: Placement = Placement::BehindNat(NatMode::Symmetric);

/// Measure NAT verdicts and direct connections in the lab, and rust-libp2p's scripted punch.
#[derive(Parser)]
struct Cli {
    /// Tries of each scenario without loss, or of each cell of the matrix [default: 5, or 20
    /// with --matrix].
    #[arg(long)]
    tries: Option<usize>,
    /// Tries of each verdict with 5% loss (the goal asks for 20).
    #[arg(long, default_value_t = 5)]
    loss_tries: usize,
    /// One-way delays per access link, in ms.
    #[arg(long, value_delimiter = ',', default_values_t = [0u64, 20])]
    delays: Vec<u64>,
    /// Transports.
    #[arg(long, value_delimiter = ',', default_values_t = ["tcp".to_owned(), "quic".to_owned()])]
    transports: Vec<String>,
    /// Scenarios to run: verdict, loss, pair, charlie, scripted.
    #[arg(long, value_delimiter = ',', default_values_t = ["verdict", "loss", "pair", "charlie", "scripted"].map(String::from))]
    only: Vec<String>,
    /// After a verdict, how long to keep watching for it to change (a change counts as wrong).
    #[arg(long, default_value_t = 1000)]
    hold_ms: u64,
    /// Run the NAT matrix instead: every pair of `--kinds`, then the `--lans` cells, `--tries`
    /// each, no delay.
    #[arg(long)]
    matrix: bool,
    /// The matrix's router kinds: none, eim, address-restricted, full-cone, symmetric,
    /// symmetric-sequential, symmetric-preserving, udp-blocked, cgnat (an eim home router
    /// behind an eim carrier-grade NAT), upnp (an eim router that maps ports over UPnP-IGD).
    #[arg(long, value_delimiter = ',', default_values_t = matrix::KINDS.map(String::from))]
    kinds: Vec<String>,
    /// The matrix's extra rows, Alice and Bob on one LAN behind an eim router that hairpins
    /// (lan-hairpin) or not (lan-nohairpin); `--lans ''` for none.
    #[arg(long, value_delimiter = ',', default_values_t = matrix::LANS.map(String::from))]
    lans: Vec<String>,
    /// The matrix's bootnodes: 1 (the bootnode's host), or 2 (a second one in Charlie's, so
    /// each peer learns how its NAT maps and says it in its record).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=2))]
    bootnodes: u8,
    /// The matrix's every ordered pair of kinds, where by default Alice's kind is never after
    /// Bob's: Alice starts first, so who acts first differs (iroh's nine cells from three).
    #[arg(long)]
    both_orders: bool,
    /// Leave out scripted rust-libp2p's tries in the matrix.
    #[arg(long)]
    no_scripted: bool,
    /// The matrix's tries at once, each in its own lab. A cell that stays relayed waits out
    /// its 12 s idle: tries at once cut the run's length several times. Only one try is busy
    /// at a time (setting up, starting nodes, the first 0.5 s of each wait, tearing down);
    /// the others overlap it only in the rest of their waits.
    #[arg(long, default_value_t = 1)]
    jobs: usize,
}

/// One try's outcome: how long it took (ms), and whether it ended as it should.
#[derive(Debug, Clone, Copy)]
struct Sample {
    ms: Option<f64>,
    ok: bool,
}

/// The rows of the table: (scenario, transport, delay in ms) → samples.
type Results = BTreeMap<(String, String, u64), Vec<Sample>>;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if cli.matrix {
        return matrix::run(&cli).await;
    }
    let tries = cli.tries.unwrap_or(5);
    let mut results = Results::new();
    let wants = |s: &str| cli.only.iter().any(|o| o == s);
    for &delay in &cli.delays {
        for transport in &cli.transports {
            let t = transport.as_str();
            let mut add = |name: &str, sample: Sample| {
                eprintln!("{name} {t} {delay} ms: {:?} ms ok={}", sample.ms, sample.ok);
                results
                    .entry((name.to_owned(), t.to_owned(), delay))
                    .or_default()
                    .push(sample);
            };
            for (what, loss, tries) in [("verdict", 0.0, tries), ("loss", 0.05, cli.loss_tries)] {
                if !wants(what) {
                    continue;
                }
                for (label, placement, expect) in [
                    ("no NAT", Placement::Public, "public"),
                    ("eim", EIM, "private"),
                    ("symmetric", SYMMETRIC, "private"),
                ] {
                    let name = if loss > 0.0 {
                        format!("verdict, {label}, 5% loss")
                    } else {
                        format!("verdict, {label}")
                    };
                    for _ in 0..tries {
                        let s = verdict(t, delay, placement, loss, expect, cli.hold_ms).await;
                        add(&name, s.unwrap_or_else(failed));
                    }
                }
            }
            for _ in 0..tries {
                if wants("pair") {
                    add(
                        "eim/eim direct (Bob's start →)",
                        pair(t, delay, Host::Bob).await.unwrap_or_else(failed),
                    );
                }
                if wants("charlie") {
                    add(
                        "charlie direct (Charlie's start →)",
                        pair(t, delay, Host::Charlie).await.unwrap_or_else(failed),
                    );
                }
                if wants("scripted") {
                    add(
                        "scripted rust-libp2p (dialer's start →)",
                        scripted(t, delay).await.unwrap_or_else(failed),
                    );
                }
            }
        }
    }
    print(&results);
    Ok(())
}

/// Plain rust-libp2p's scripted punch between eim NATs, each access link delayed by `delay`.
async fn scripted(transport: &str, delay: u64) -> anyhow::Result<Sample> {
    let quiet = tokio::sync::Mutex::new(());
    let ms = scripted::punch(topology(EIM, EIM, delay, 0.0), transport, TRY_WAIT, &quiet).await?;
    Ok(Sample {
        ms: Some(ms),
        ok: true,
    })
}

fn failed(error: anyhow::Error) -> Sample {
    eprintln!("try failed: {error:#}");
    Sample {
        ms: None,
        ok: false,
    }
}

/// Every access link delayed by `delay` ms one way; Alice's also losing `loss`.
fn topology(alice: Placement, bob: Placement, delay: u64, loss: f64) -> Topology {
    let d = Impairment::delay(Duration::from_millis(delay));
    let mut t = Topology::new(alice, bob);
    for host in [Host::Bootnode, Host::Charlie, Host::Bob] {
        if delay > 0 {
            t = t.with_uplink(host, d);
        }
    }
    if delay > 0 || loss > 0.0 {
        t = t.with_uplink(Host::Alice, d.with_loss(loss));
    }
    t
}

/// Milliseconds since the Unix epoch now.
fn now_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64() * 1000.0)
        .unwrap_or_default()
}

/// The time of a log line (tracing's RFC 3339 `timestamp`, UTC) in ms since the Unix epoch.
fn logged_ms(line: &Value) -> anyhow::Result<f64> {
    let ts = field(line, "timestamp");
    let parse = || -> Option<f64> {
        let (date, time) = ts.trim_end_matches('Z').split_once('T')?;
        let mut d = date.split('-').map(|p| p.parse::<i64>());
        let (y, m, day) = (d.next()?.ok()?, d.next()?.ok()?, d.next()?.ok()?);
        let mut t = time.split(':');
        let (h, min) = (
            t.next()?.parse::<f64>().ok()?,
            t.next()?.parse::<f64>().ok()?,
        );
        let s = t.next()?.parse::<f64>().ok()?;
        // Days from the civil date (Howard Hinnant's algorithm).
        let y = if m <= 2 { y - 1 } else { y };
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + day - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        let days = era * 146_097 + doe - 719_468;
        Some(((days as f64 * 24.0 + h) * 60.0 + min) * 60_000.0 + s * 1000.0)
    };
    parse().with_context(|| format!("no timestamp in {line}"))
}

/// Alice placed as given, alone with the bootnode: her first verdict and how long it took
/// from her first bootnode connection.
async fn verdict(
    transport: &str,
    delay: u64,
    placement: Placement,
    loss: f64,
    expect: &str,
    hold_ms: u64,
) -> anyhow::Result<Sample> {
    let lab = Lab::up(topology(placement, Placement::Public, delay, loss))?;
    let (mut boot, enr) = bootnode(&lab, &[transport]).await?;
    let mut alice = peer(&lab, Host::Alice, &enr, &listen(transport))?;
    let connected = alice
        .wait_for("connected", TRY_WAIT, |l| l["bootnode"] == true)
        .await?;
    let changed = alice
        .wait_for("NAT status changed", TRY_WAIT, |_| true)
        .await?;
    let ms = logged_ms(&changed)? - logged_ms(&connected)?;
    tokio::time::sleep(Duration::from_millis(hold_ms)).await;
    let changes = alice.lines_with("NAT status changed").len();
    let ok = field(&changed, "to") == expect && changes == 1;
    if !ok {
        eprintln!(
            "wrong verdict: {} ({changes} changes): {}",
            field(&changed, "to"),
            field(&changed, "reason")
        );
    }
    scenario::stop_all(&mut [&mut alice, &mut boot]).await;
    Ok(Sample { ms: Some(ms), ok })
}

/// Alice behind an eim NAT, up, flagged and holding her relay slot; then `who` (Bob behind
/// another eim NAT, or public Charlie) starts: the time from its start to the first direct
/// connection between the two, seen from either side.
async fn pair(transport: &str, delay: u64, who: Host) -> anyhow::Result<Sample> {
    let lab = Lab::up(topology(EIM, EIM, delay, 0.0))?;
    let (mut boot, enr) = bootnode(&lab, &[transport]).await?;
    let mut alice = peer(&lab, Host::Alice, &enr, &listen(transport))?;
    let alice_id = peer_id(&mut alice).await?;
    alice
        .wait_for("local record updated", TRY_WAIT, |l| l["nat"] == true)
        .await?;
    alice
        .wait_for("relay reservation accepted", TRY_WAIT, |_| true)
        .await?;
    let begun = now_ms();
    let mut other = peer(&lab, who, &enr, &listen(transport))?;
    let other_id = peer_id(&mut other).await?;
    let direct = |id: String| move |l: &Value| field(l, "peer") == id && l["relayed"] == false;
    let first = tokio::select! {
        l = alice.wait_for("connected", TRY_WAIT, direct(other_id.clone())) => l,
        l = other.wait_for("connected", TRY_WAIT, direct(alice_id.clone())) => l,
    }?;
    // The other side may have logged its end a moment earlier.
    let mut at = logged_ms(&first)?;
    for (node, id) in [(&alice, &other_id), (&other, &alice_id)] {
        for line in node.lines_with("connected") {
            if direct(id.clone())(&line) {
                at = at.min(logged_ms(&line)?);
            }
        }
    }
    scenario::stop_all(&mut [&mut other, &mut alice, &mut boot]).await;
    Ok(Sample {
        ms: Some(at - begun),
        ok: true,
    })
}

/// Prints one row per scenario, transport and delay, then peerfind's pair against the script.
fn print(results: &Results) {
    println!(
        "\n{:<44} {:>5} {:>6} {:>9} {:>9} {:>7} {:>8}",
        "scenario", "", "delay", "median", "max", "× RTT", "ok"
    );
    for ((name, transport, delay), samples) in results {
        let mut ms: Vec<f64> = samples.iter().filter_map(|s| s.ms).collect();
        ms.sort_by(f64::total_cmp);
        let ok = samples.iter().filter(|s| s.ok).count();
        let median = median(&ms);
        let rtt = (4 * delay) as f64;
        println!(
            "{name:<44} {transport:>5} {:>6} {:>9} {:>9} {:>7} {:>8}",
            format!("{delay} ms"),
            median.map_or("-".into(), |m| format!("{:.0} ms", m)),
            ms.last().map_or("-".into(), |m| format!("{:.0} ms", m)),
            match median {
                Some(m) if rtt > 0.0 => format!("{:.1}", m / rtt),
                _ => "-".into(),
            },
            format!("{ok}/{}", samples.len()),
        );
    }
    println!("\npeerfind's eim/eim direct against scripted rust-libp2p (medians):");
    for ((name, transport, delay), samples) in results {
        if !name.starts_with("eim/eim") {
            continue;
        }
        let key = (
            "scripted rust-libp2p (dialer's start →)".to_owned(),
            transport.clone(),
            *delay,
        );
        let ours = median(&sorted(samples));
        let theirs = results.get(&key).and_then(|s| median(&sorted(s)));
        if let (Some(a), Some(b)) = (ours, theirs) {
            println!(
                "  {transport} {delay} ms: {a:.0} ms vs {b:.0} ms, ratio {:.2}",
                a / b
            );
        }
    }
}

fn sorted(samples: &[Sample]) -> Vec<f64> {
    let mut ms: Vec<f64> = samples.iter().filter_map(|s| s.ms).collect();
    ms.sort_by(f64::total_cmp);
    ms
}

fn median(sorted: &[f64]) -> Option<f64> {
    (!sorted.is_empty()).then(|| sorted[sorted.len() / 2])
}
