//! How often foreign libp2p peers (js-libp2p, py-libp2p, plain rust-libp2p) complete
//! identify and ping with a peerfind bootnode, per implementation and transport, on loopback
//! with the real binary. Needs what `scripts/test.sh` installs for the probes.
//!
//! ```text
//! cargo build -p peerfind -p peerfind-tests --bins
//! target/debug/interop-bench --tries 20
//! target/debug/interop-bench --tries 20 --impl py --pings 3
//! ```
//!
//! `--pings N` sends N pings on one stream, as py-libp2p's own ping service does, and counts
//! a try only when every one was answered; only probes that can are run then.
//!
//! It prints the counts and the first error of each cell, and asserts nothing: the tests run
//! fewer tries and require every one to pass.

use clap::Parser;
use peerfind_tests::interop::{Implementation, dial_pinging};
use peerfind_tests::local;

/// Count successful identify + ping of foreign peers with a peerfind bootnode.
#[derive(Parser)]
struct Cli {
    /// Dials per implementation and transport.
    #[arg(long, default_value_t = 20)]
    tries: usize,
    /// Only these implementations (js, py, rust; repeatable). Default: all.
    #[arg(long = "impl")]
    implementations: Vec<String>,
    /// Pings on one stream per try; above 1, only the probes that can (py).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..))]
    pings: u16,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let (mut boot, bootnode) = local::bootnode().await?;
    println!("pings per stream: {}", cli.pings);
    println!(
        "{:<14} {:<6} {:>9}  first failure",
        "implementation", "transport", "succeeded"
    );
    for implementation in Implementation::ALL {
        let short = implementation.name().trim_end_matches("-libp2p");
        if !cli.implementations.is_empty() && !cli.implementations.iter().any(|i| i == short) {
            continue;
        }
        if cli.pings > 1 && !implementation.pings_on_one_stream() {
            continue;
        }
        for transport in implementation.transports() {
            let Some(addr) = bootnode.addrs.iter().find(|a| a.contains(transport)) else {
                continue;
            };
            let mut ok = 0;
            let mut first_failure = None;
            for _ in 0..cli.tries {
                match dial_pinging(implementation, addr, cli.pings.into()).await {
                    Ok(_) => ok += 1,
                    Err(e) => {
                        first_failure.get_or_insert_with(|| {
                            e.to_string()
                                .lines()
                                .take(6)
                                .collect::<Vec<_>>()
                                .join(" | ")
                        });
                    }
                }
            }
            println!(
                "{:<14} {:<9} {:>3}/{:<3}  {}",
                implementation.name(),
                transport,
                ok,
                cli.tries,
                first_failure.unwrap_or_default()
            );
        }
    }
    boot.stop().await?;
    Ok(())
}
