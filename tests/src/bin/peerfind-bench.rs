//! Numbers for the first two diagrams and the status API, on loopback with the real binary:
//! how long a node takes to learn its address from a bootnode, how long until a second node
//! reaches it through the bootnode's gossip, and how long `GetStatus` takes to answer.
//!
//! ```text
//! cargo build --release -p peerfind -p peerfind-tests --bins
//! target/release/peerfind-bench --rounds 10 --calls 1000
//! ```
//!
//! It prints what it measured and asserts nothing: speed is read here, not in the tests.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Parser;
use peerfind_proto::v1 as pb;
use peerfind_proto::v1::node_client::NodeClient;
use peerfind_tests::local::{self, WAIT};
use peerfind_tests::process::field;

/// Measure peerfind on loopback: address learning, gossip-led dials, status API latency.
#[derive(Parser)]
#[command(version)]
struct Cli {
    /// Nodes started one after the other for the first two numbers.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// `GetStatus` calls, one after the other on one connection.
    #[arg(long, default_value_t = 500)]
    calls: usize,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let (mut boot, bootnode) = local::bootnode().await?;

    // First diagram: start to "local record updated" with the address the bootnode saw.
    // Second diagram: Charlie's start to his connection to Alice, whom only gossip names.
    let mut learned = Vec::new();
    let mut reached = Vec::new();
    for round in 0..cli.rounds.max(1) {
        let begun = Instant::now();
        let mut alice = local::peer(&format!("alice-{round}"), &bootnode.enr)?;
        let start = alice.wait_for("starting", WAIT, |_| true).await?;
        let alice_id = field(&start, "peer_id").to_owned();
        alice
            .wait_for("local record updated", WAIT, |l| {
                field(l, "tcp").starts_with("Some(") && field(l, "quic").starts_with("Some(")
            })
            .await?;
        learned.push(begun.elapsed());

        let begun = Instant::now();
        let mut charlie = local::peer(&format!("charlie-{round}"), &bootnode.enr)?;
        charlie
            .wait_for("connected", WAIT, |l| field(l, "peer") == alice_id)
            .await?;
        reached.push(begun.elapsed());
        charlie.stop().await?;
        alice.stop().await?;
    }

    let addr = boot.api_addr().await?;
    let mut api = NodeClient::connect(format!("http://{addr}"))
        .await
        .context("connecting to the bootnode's API")?;
    let mut answered = Vec::with_capacity(cli.calls);
    for _ in 0..cli.calls.max(1) {
        let begun = Instant::now();
        api.get_status(pb::GetStatusRequest {}).await?;
        answered.push(begun.elapsed());
    }
    boot.stop().await?;

    println!("{:<44} {:>10} {:>10} {:>10}", "", "median", "p90", "max");
    for (what, mut took) in [
        ("address learned from the bootnode (start →)", learned),
        ("peer reached through gossip (start →)", reached),
        ("GetStatus answered", answered),
    ] {
        took.sort();
        println!(
            "{what:<44} {:>10} {:>10} {:>10}   ({} samples)",
            ms(took[took.len() / 2]),
            ms(took[took.len() * 9 / 10]),
            ms(took[took.len() - 1]),
            took.len()
        );
    }
    Ok(())
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}
