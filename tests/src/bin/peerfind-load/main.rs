//! Offers bootnodes (the real binary) many peers from this one process, and prints what it
//! measured: connections and each bootnode's memory as peers join; how long each peer takes
//! from its dial until its bootnode holds its record with the address it observed (join);
//! with several bootnodes, how long until every bootnode holds every record over their mesh
//! and what that costs each of them per record (mesh messages, bytes); how many record
//! updates and introductions the bootnodes get through per second; and the memory of one
//! real `peerfind run` peer in that network.
//!
//! ```text
//! cargo build --release -p peerfind -p peerfind-tests --bins
//! target/release/peerfind-load --peers 1000 --join-secs 10            # capacity of one bootnode
//! target/release/peerfind-load --peers 990 --bootnodes 10              # a 1,000-node network
//! ```
//!
//! Each simulated peer is a real libp2p swarm (TCP, noise, yamux) with identify, ping and
//! peerfind's own gossip and intro behaviours, so the bootnode sees on each connection what a
//! `peerfind run` would show it, minus QUIC, relay, DCUtR and AutoNAT. Simulated peers do not
//! listen: the bootnode observes their dialing port, which is what they announce. What the
//! bootnode did is read through its status API (`GetStatus`, `WatchEvents`), as an operator
//! would; nothing here reads its log. It asserts nothing: speed and size are read here.

mod bootnode;
mod tally;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Parser;
use libp2p::identity;
use peerfind_proto::v1::node_client::NodeClient;
use peerfind_tests::local;
use peerfind_tests::sim::{Order, World, simulated_peer};
use tokio::sync::{broadcast, mpsc};

use bootnode::{UnderTest, cpu_ms, io_bytes, metric, rss_kib, status};
use tally::{Reported, Tally};

/// Load a bootnode with simulated peers and print what it takes.
#[derive(Parser)]
#[command(version)]
struct Cli {
    /// Simulated peers.
    #[arg(long, default_value_t = 1000)]
    peers: usize,
    /// Bootnodes (real processes), joined into one mesh; the peers are spread over them.
    #[arg(long, default_value_t = 1)]
    bootnodes: usize,
    /// Time over which the peers start, evenly spread.
    #[arg(long, default_value_t = 10.0)]
    join_secs: f64,
    /// Rounds in which every peer updates its record once, all at the same moment.
    #[arg(long, default_value_t = 3)]
    update_rounds: usize,
    /// Records a simulated peer keeps (a real peer keeps 2048 by default; the simulated ones
    /// are not what is measured, and thousands of full tables would only fill this process).
    #[arg(long, default_value_t = 64)]
    sim_table: usize,
    /// How long to wait for each phase before reporting what came through.
    #[arg(long, default_value_t = 120)]
    phase_timeout_secs: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    raise_fd_limit();
    let phase_timeout = Duration::from_secs(cli.phase_timeout_secs);

    // The bootnodes: the real binary on loopback, each joined to every one started before it
    // and all holding one mesh secret, so they form one mesh; the simulated peers dial their
    // TCP addresses.
    let tally = Tally::default();
    let secret = local::MeshSecret::new()?;
    let mut bootnodes = Vec::new();
    for i in 0..cli.bootnodes.max(1) {
        bootnodes.push(UnderTest::start(i, &bootnodes, &secret, &tally).await?);
    }
    let idle_rss: Vec<u64> = bootnodes.iter().map(|b| rss_kib(b.pid)).collect();
    let idle_io: Vec<u64> = bootnodes.iter().map(|b| io_bytes(b.pid)).collect();
    let idle_cpu = cpu_ms(&bootnodes);

    // The simulated peers, their keys made up front so their node ids are known to all.
    let keys: Vec<identity::secp256k1::Keypair> = (0..cli.peers)
        .map(|_| identity::secp256k1::Keypair::generate())
        .collect();
    let node_ids = keys
        .iter()
        .map(|k| {
            let key = identity::PublicKey::from(k.public().clone()).to_peer_id();
            peerfind_behaviours::enr_ext::node_id(&key).context("a secp256k1 node id")
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let (orders, _) = broadcast::channel(16);
    let (reports, mut incoming) = mpsc::channel(4096);
    let mut reported = Reported::default();
    let world = World {
        bootnodes: bootnodes
            .iter()
            .map(|b| (b.tcp.clone(), b.peer_id))
            .collect(),
        orders: orders.clone(),
        reports,
        node_ids: Arc::new(node_ids),
        sim_table: cli.sim_table,
    };

    // Join: the peers start evenly spread over --join-secs, each on the next bootnode.
    println!(
        "peerfind-load: {} simulated peers joining {} bootnode(s) over {:.1} s",
        cli.peers,
        bootnodes.len(),
        cli.join_secs
    );
    let gap = Duration::from_secs_f64(cli.join_secs / cli.peers.max(1) as f64);
    let begun = Instant::now();
    for (index, key) in keys.into_iter().enumerate() {
        tokio::time::sleep_until((begun + gap * index as u32).into()).await;
        tokio::spawn(simulated_peer(index, key, world.clone()));
        reported.drain(&mut incoming);
    }
    let deadline = Instant::now() + phase_timeout;
    // A peer whose dial failed never joins: wait for the others only.
    while tally.joined(&reported.dialed_at) < cli.peers.saturating_sub(reported.failures.len())
        && Instant::now() < deadline
    {
        reported.wait(&mut incoming).await;
    }
    let join_secs = begun.elapsed().as_secs_f64();
    let joins = tally.join_times(&reported.dialed_at);

    // Convergence: every bootnode holds the record of every peer that joined and every other
    // bootnode's.
    let everyone = (joins.len() + bootnodes.len() - 1) as u64;
    let deadline = Instant::now() + phase_timeout;
    let mut held = Vec::new();
    loop {
        held.clear();
        for b in &mut bootnodes {
            held.push(status(&mut b.client).await?);
        }
        if held.iter().all(|c| c.records >= everyone) || Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let converged_secs = begun.elapsed().as_secs_f64();
    let mut mesh_messages = Vec::new();
    for b in &bootnodes {
        mesh_messages.push(metric(b.metrics, "libp2p_gossipsub_messages_total").await);
    }
    let joined_rss: Vec<u64> = bootnodes.iter().map(|b| rss_kib(b.pid)).collect();
    let joined_io: Vec<u64> = bootnodes.iter().map(|b| io_bytes(b.pid)).collect();
    let join_cpu = cpu_ms(&bootnodes) - idle_cpu;

    println!();
    println!("| join and convergence | value |");
    println!("|---|---|");
    println!(
        "| peers started | {} in {:.1} s on {} bootnode(s) |",
        cli.peers,
        cli.join_secs,
        bootnodes.len()
    );
    println!(
        "| joined (its record with its address at its bootnode) | {} in {join_secs:.1} s |",
        joins.len()
    );
    println!(
        "| dial failures, first identify retried | {}, {} |",
        reported.failures.len(),
        reported.retried.len()
    );
    println!(
        "| join p50 / p90 / p99 / max | {} / {} / {} / {} |",
        ms(percentile(&joins, 0.50)),
        ms(percentile(&joins, 0.90)),
        ms(percentile(&joins, 0.99)),
        ms(percentile(&joins, 1.0))
    );
    println!(
        "| every bootnode holds every joined peer's record and each other's ({everyone}) | {} at {converged_secs:.1} s |",
        if held.iter().all(|c| c.records >= everyone) {
            "yes"
        } else {
            "no"
        }
    );
    for (i, b) in bootnodes.iter().enumerate() {
        let records = held[i].records.max(1) as f64;
        println!(
            "| bootnode {i}: connections, records, RSS idle → joined | {}, {}, {:.1} → {:.1} MiB ({:.1} KiB per connection) |",
            held[i].direct,
            held[i].records,
            idle_rss[i] as f64 / 1024.0,
            joined_rss[i] as f64 / 1024.0,
            joined_rss[i].saturating_sub(idle_rss[i]) as f64 / held[i].direct.max(1) as f64
        );
        println!(
            "| bootnode {i}: per record held: mesh messages, bytes sent+received | {}, {:.0} B |",
            mesh_messages[i]
                .map(|m| format!("{:.2}", m / records))
                .unwrap_or_else(|| "-".into()),
            joined_io[i].saturating_sub(idle_io[i]) as f64 / records
        );
        let _ = b;
    }
    println!(
        "| bootnodes' CPU while peers joined | {:.1} s, {:.2} ms per joined peer |",
        join_cpu as f64 / 1000.0,
        join_cpu as f64 / joins.len().max(1) as f64
    );
    if let Some(first) = reported.failures.first() {
        println!("first dial failure: {first}");
    }

    // Record updates: every peer re-signs its record at once, --update-rounds times; every
    // bootnode takes each update (its own peers' directly, the others' over the mesh).
    let expected = (joins.len() * bootnodes.len()) as u64;
    let mut rates = Vec::new();
    let before_updates = cpu_ms(&bootnodes);
    for _ in 0..cli.update_rounds {
        let before = tally.updates();
        let began = Instant::now();
        let _ = orders.send(Order::Update);
        let deadline = began + phase_timeout;
        // When half, 99% and all of the updates were taken: a straggler shows apart from the
        // rate the bulk went through at.
        let mut marks = [None; 3];
        let goals = [expected / 2, expected * 99 / 100, expected];
        loop {
            let done = tally.updates() - before;
            for (mark, goal) in marks.iter_mut().zip(goals) {
                if mark.is_none() && done >= goal {
                    *mark = Some(began.elapsed());
                }
            }
            if done >= expected || Instant::now() >= deadline {
                break;
            }
            tally.changed().await;
        }
        let done = tally.updates() - before;
        rates.push((done, done as f64 / began.elapsed().as_secs_f64(), marks));
    }
    let update_cpu = cpu_ms(&bootnodes) - before_updates;
    let updates_taken: u64 = rates.iter().map(|(done, _, _)| done).sum();
    let update_rss: Vec<u64> = bootnodes.iter().map(|b| rss_kib(b.pid)).collect();

    // Introductions: every peer asks its bootnode for a peer on the same bootnode, all at once.
    let served_before = tally.served();
    let before_intros = cpu_ms(&bootnodes);
    let began = Instant::now();
    let _ = orders.send(Order::Introduce(bootnodes.len()));
    reported.answers.clear();
    let deadline = began + phase_timeout;
    while reported.answers.len() < joins.len() && Instant::now() < deadline {
        reported.wait(&mut incoming).await;
    }
    let intro_secs = began.elapsed().as_secs_f64();
    let served = tally.served() - served_before;
    let intro_cpu = cpu_ms(&bootnodes) - before_intros;
    let mut outcomes: HashMap<String, usize> = HashMap::new();
    for outcome in &reported.answers {
        *outcomes.entry(format!("{outcome:?}")).or_default() += 1;
    }

    // One real peer in that network: what it costs to be one.
    let mut real = local::peer("real-peer", &bootnodes[0].enr)?;
    let real_pid = real.pid().context("the real peer's pid")?;
    let real_api = real.api_addr().await?;
    let mut real_client = NodeClient::connect(format!("http://{real_api}")).await?;
    let deadline = Instant::now() + phase_timeout;
    while Instant::now() < deadline && status(&mut real_client).await?.records == 0 {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = orders.send(Order::Update);
    let settle = Instant::now() + Duration::from_secs(2);
    while Instant::now() < settle {
        tally.changed().await;
    }
    let real_rss = rss_kib(real_pid);
    let real_records = status(&mut real_client).await?.records;

    println!();
    println!("| throughput | value |");
    println!("|---|---|");
    for (round, (done, rate, marks)) in rates.iter().enumerate() {
        let [half, most, all] = marks.map(ms);
        println!(
            "| record updates taken by the bootnodes, round {} | {done} of {expected}, {rate:.0}/s; 50% / 99% / all at {half} / {most} / {all} |",
            round + 1
        );
    }
    println!(
        "| bootnodes' CPU per record update taken | {:.3} ms ({:.0} updates per CPU second) |",
        update_cpu as f64 / updates_taken.max(1) as f64,
        updates_taken as f64 * 1000.0 / update_cpu.max(1) as f64
    );
    println!(
        "| introductions served | {served} in {intro_secs:.2} s = {:.0}/s |",
        served as f64 / intro_secs
    );
    println!(
        "| bootnodes' CPU per introduction asked | {:.3} ms ({:.0} per CPU second) |",
        intro_cpu as f64 / reported.answers.len().max(1) as f64,
        reported.answers.len() as f64 * 1000.0 / intro_cpu.max(1) as f64
    );
    let mut outcomes: Vec<_> = outcomes.into_iter().collect();
    outcomes.sort();
    println!("| introduction answers | {outcomes:?} |");
    println!(
        "| bootnode RSS after updates | {} |",
        update_rss
            .iter()
            .map(|r| format!("{:.1} MiB", *r as f64 / 1024.0))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "| real peer: RSS, records held | {:.1} MiB, {real_records} |",
        real_rss as f64 / 1024.0
    );
    println!("| watch events missed (lagged) | {} |", tally.missed());

    let _ = orders.send(Order::Stop);
    real.stop().await?;
    for b in &mut bootnodes {
        b.process.stop().await?;
    }
    Ok(())
}

/// Thousands of connections need thousands of file descriptors, here and in the bootnode
/// (which inherits the limit): raise the soft limit to the hard one.
fn raise_fd_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    if let Ok((_, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Option<Duration> {
    if sorted.is_empty() {
        return None;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted.get(i).copied()
}

fn ms(d: Option<Duration>) -> String {
    d.map(|d| format!("{} ms", d.as_millis()))
        .unwrap_or_else(|| "-".into())
}
