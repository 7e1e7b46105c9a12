//! The `peerfind` command: parses arguments and calls into the library.

use anyhow::Context as _;
use clap::{Parser, Subcommand, ValueEnum};
use peerfind::{Config, Mode, Node, inspect};

/// Lets peers find and reach each other, even behind NATs.
///
/// A peer joins through bootnodes: they tell it its public address, which goes into its
/// node record (ENR), and they gossip records so peers can dial each other directly.
#[derive(Debug, Parser)]
#[command(name = "peerfind", version, propagate_version = true)]
struct Cli {
    /// Log format: `text` for people, `json` (one object per line) for machines. The level
    /// comes from RUST_LOG (default: info).
    #[arg(
        long,
        global = true,
        env = "PEERFIND_LOG_FORMAT",
        default_value = "text"
    )]
    log_format: LogFormat,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a peer: join through `--bootnode`s, learn the public address, meet other peers.
    Run(Config),
    /// Run a bootnode: a meeting point that tells peers their address and gossips records.
    /// Prints its record and addresses at start, and writes them to `bootnode.txt` in its
    /// data directory, for peers' `--bootnode`.
    Bootnode(Config),
    /// Work with node records (ENRs).
    Enr {
        #[command(subcommand)]
        command: EnrCommand,
    },
}

#[derive(Debug, Subcommand)]
enum EnrCommand {
    /// Print every field of a record (node id, PeerId, seq, addresses, flags, public key) and
    /// say what is wrong with an invalid one.
    Decode {
        /// The record, `enr:…`.
        enr: String,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    match cli.command {
        Command::Run(config) => run(Mode::Peer, config),
        Command::Bootnode(config) => run(Mode::Bootnode, config),
        Command::Enr {
            command: EnrCommand::Decode { enr, json },
        } => {
            let decoded = inspect::decode(&enr).context("invalid ENR")?;
            if json {
                println!("{}", serde_json::to_string_pretty(&decoded)?);
            } else {
                println!("{decoded}");
            }
            Ok(())
        }
    }
}

fn run(mode: Mode, config: Config) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async {
        let node = Node::new(mode, config, None)?;
        node.run().await?;
        Ok(())
    })
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}
