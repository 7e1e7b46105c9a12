//! Brings a NAT lab up by hand, to look around in it while debugging.
//!
//! ```text
//! peerfind-lab up --alice eim --bob symmetric --prefix dbg
//! peerfind-lab exec --prefix dbg alice -- ping -c1 198.51.100.20
//! peerfind-lab list
//! peerfind-lab down --prefix dbg
//! ```

use std::os::unix::process::CommandExt as _;

use anyhow::Context as _;
use clap::{Parser, Subcommand, ValueEnum};
use peerfind_tests::lab::{self, Host, Lab, NatMode, Placement, Topology};

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
        /// The start of every namespace name; a fresh one when not given.
        #[arg(long, env = "PEERFIND_LAB_PREFIX")]
        prefix: Option<String>,
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
        /// bootnode, charlie, alice, bob, nat-a or nat-b.
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
}

impl From<Place> for Placement {
    fn from(place: Place) -> Self {
        match place {
            Place::Public => Placement::Public,
            Place::Eim => Placement::BehindNat(NatMode::EndpointIndependent),
            Place::Symmetric => Placement::BehindNat(NatMode::Symmetric),
            Place::Fullcone => Placement::BehindNat(NatMode::FullCone),
        }
    }
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Up { alice, bob, prefix } => {
            let topology = Topology::new(alice.into(), bob.into());
            let lab = match prefix {
                Some(prefix) => Lab::up_named(topology, &prefix)?,
                None => Lab::up(topology)?,
            };
            println!("lab {} is up ({topology:?})", lab.prefix());
            for host in topology.hosts() {
                println!(
                    "{:<9} {:<24} ip {:<15} seen as {}",
                    host,
                    lab.netns(host),
                    lab.ip(host),
                    lab.public_ip(host)
                );
            }
            let prefix = lab.keep();
            println!("remove it with: peerfind-lab down --prefix {prefix}");
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
