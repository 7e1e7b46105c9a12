//! Brings a NAT lab up by hand, to look around in it while debugging.
//!
//! ```text
//! peerfind-lab up --alice eim --bob symmetric --prefix dbg
//! peerfind-lab up --prefix slow --uplink alice=20 --uplink charlie=50/0.05   # stays until Ctrl-C
//! peerfind-lab exec --prefix dbg alice -- ping -c1 198.51.100.20
//! peerfind-lab list
//! peerfind-lab down --prefix dbg
//! ```

use std::os::unix::process::CommandExt as _;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand, ValueEnum};
use peerfind_tests::lab::{self, Host, Impairment, Lab, NatMode, Placement, Topology};

/// Make, enter, list and remove NAT labs (network namespaces; needs root, `ip` and `nft`).
#[derive(Parser)]
#[command(version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Bring a lab up and leave it running; prints its namespaces and addresses.
    Up {
        /// Where Alice sits.
        #[arg(long, value_enum, default_value_t = Place::Eim)]
        alice: Place,
        /// Where Bob sits.
        #[arg(long, value_enum, default_value_t = Place::Eim)]
        bob: Place,
        /// Make every router hairpin (matters with `--bob same-lan`).
        #[arg(long)]
        hairpin: bool,
        /// The start of every namespace name; a fresh one when not given.
        #[arg(long, env = "PEERFIND_LAB_PREFIX")]
        prefix: Option<String>,
        /// Impair a host's uplink: HOST=DELAY_MS or HOST=DELAY_MS/LOSS (loss from 0 to 1),
        /// e.g. alice=20/0.05. This process then forwards that link, so it stays in the
        /// foreground and takes the lab down on Ctrl-C.
        #[arg(long, value_parser = parse_uplink)]
        uplink: Vec<(Host, Impairment)>,
    },
    /// Remove a lab: kill its processes and delete its namespaces.
    Down {
        /// The lab's prefix, as `up` or `list` printed it.
        #[arg(long, env = "PEERFIND_LAB_PREFIX")]
        prefix: String,
    },
    /// Run a command inside one host of a lab.
    Exec {
        /// The lab's prefix.
        #[arg(long, env = "PEERFIND_LAB_PREFIX")]
        prefix: String,
        /// bootnode, charlie, alice, bob, nat-a, nat-b, home-a or home-b.
        host: Host,
        /// The command and its arguments, after `--`.
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// Show the labs present and their namespaces.
    List,
}

/// Where Alice or Bob sits, as the command line says it.
#[derive(Clone, Copy, ValueEnum)]
enum Place {
    /// On the public segment.
    Public,
    /// Behind an endpoint-independent NAT.
    Eim,
    /// Behind a symmetric NAT.
    Symmetric,
    /// Behind a full-cone NAT.
    Fullcone,
    /// Behind an address-restricted cone NAT.
    AddressRestricted,
    /// Behind an endpoint-independent NAT that lets no UDP out.
    UdpBlocked,
    /// Behind a symmetric NAT that allocates ports sequentially.
    SymmetricSequential,
    /// Behind a symmetric NAT that keeps the port for the first destination.
    SymmetricPreserving,
    /// Behind an endpoint-independent home NAT behind a carrier-grade NAT (home-a or home-b,
    /// then nat-a or nat-b).
    Cgnat,
    /// Bob only: on Alice's LAN, behind her router.
    SameLan,
}

impl From<Place> for Placement {
    fn from(place: Place) -> Self {
        match place {
            Place::Public => Placement::Public,
            Place::Eim => Placement::BehindNat(NatMode::EndpointIndependent),
            Place::Symmetric => Placement::BehindNat(NatMode::Symmetric),
            Place::Fullcone => Placement::BehindNat(NatMode::FullCone),
            Place::AddressRestricted => Placement::BehindNat(NatMode::AddressRestricted),
            Place::UdpBlocked => Placement::BehindNat(NatMode::UdpBlocked),
            Place::SymmetricSequential => Placement::BehindNat(NatMode::SymmetricSequential),
            Place::SymmetricPreserving => Placement::BehindNat(NatMode::SymmetricPreserving),
            Place::Cgnat => Placement::BehindCgnat(NatMode::EndpointIndependent),
            Place::SameLan => Placement::SameLan,
        }
    }
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Up {
            alice,
            bob,
            hairpin,
            prefix,
            uplink,
        } => {
            let impaired = !uplink.is_empty();
            let topology = uplink.into_iter().fold(
                Topology::new(alice.into(), bob.into()).with_hairpin(hairpin),
                |topology, (host, impairment)| topology.with_uplink(host, impairment),
            );
            let lab = match prefix {
                Some(prefix) => Lab::up_named(topology, &prefix)?,
                None => Lab::up(topology)?,
            };
            println!("lab {} is up", lab.prefix());
            for host in topology.hosts() {
                let uplink = topology
                    .uplink(host)
                    .map(|Impairment { delay, loss }| {
                        format!("  uplink delay {delay:?} loss {loss}")
                    })
                    .unwrap_or_default();
                println!(
                    "{host:<9} {:<24} ip {:<15} seen as {:<15}{uplink}",
                    lab.netns(host),
                    lab.ip(host),
                    lab.public_ip(host)
                );
            }
            if impaired {
                println!("forwarding the impaired links; Ctrl-C takes the lab down");
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?
                    .block_on(tokio::signal::ctrl_c())?;
                lab.down()?;
            } else {
                let prefix = lab.keep();
                println!("remove it with: peerfind-lab down --prefix {prefix}");
            }
        }
        Command::Down { prefix } => {
            let removed = lab::remove(&prefix)?;
            anyhow::ensure!(!removed.is_empty(), "no lab has the prefix {prefix:?}");
            println!("removed {}", removed.join(" "));
        }
        Command::Exec {
            prefix,
            host,
            command,
        } => {
            let netns = lab::netns_name(&prefix, host);
            // `exec` only returns when it failed.
            let error = std::process::Command::new("ip")
                .args(["netns", "exec", &netns])
                .args(&command)
                .exec();
            return Err(error).with_context(|| format!("running {command:?} in {netns}"));
        }
        Command::List => {
            for (prefix, namespaces) in lab::list()? {
                println!("{prefix}: {}", namespaces.join(" "));
            }
        }
    }
    Ok(())
}

/// Parses `HOST=DELAY_MS` or `HOST=DELAY_MS/LOSS`.
fn parse_uplink(text: &str) -> anyhow::Result<(Host, Impairment)> {
    let (host, rest) = text
        .split_once('=')
        .context("expected HOST=DELAY_MS or HOST=DELAY_MS/LOSS")?;
    let (delay, loss) = rest.split_once('/').unwrap_or((rest, "0"));
    let delay = Duration::from_millis(delay.parse().context("the delay is whole milliseconds")?);
    let loss: f64 = loss.parse().context("the loss is a number from 0 to 1")?;
    Ok((host.parse()?, Impairment::delay(delay).with_loss(loss)))
}
