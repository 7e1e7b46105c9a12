//! The `peerfind` command: parses arguments and calls into the library.

use std::io::stdout;
use std::net::SocketAddr;

use std::ffi::OsString;
use std::path::Path;

use anyhow::Context as _;
use clap::{CommandFactory, Parser, Subcommand, ValueEnum};
use futures::FutureExt as _;
use peerfind::api::{self, client};
use peerfind::config::{BootnodeSource, file};
use peerfind::record::inspect;
use peerfind::{Config, Mode, Node};

/// Lets peers find and reach each other, even behind NATs.
///
/// A peer joins through bootnodes: they tell it its public address, which goes into its
/// node record (ENR), and they gossip records so peers can dial each other directly.
#[derive(Debug, Parser)]
#[command(
    name = "peerfind",
    version,
    propagate_version = true,
    args_override_self = true
)]
struct Cli {
    /// A TOML file of settings for `run` and `bootnode`: one key per flag, named as the flag
    /// without its dashes (`max_peers = 50`, `bootnode = ["enr:…"]`). Flags override the
    /// environment, which overrides the file; `peerfind config run` shows the result.
    #[arg(long, global = true, env = "PEERFIND_CONFIG", value_name = "FILE")]
    config: Option<std::path::PathBuf>,

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
    /// data directory, for peers' `--bootnode`. The bootnodes of one network share every
    /// record: give each the same `--mesh-secret-file` and start each new one with
    /// `--bootnode` naming one that runs (or configure each with all the others).
    Bootnode(Config),
    /// Print the configuration `run` or `bootnode` would start with (flags, environment,
    /// `--config` file and defaults, each value with where it came from), and exit.
    Config {
        #[command(subcommand)]
        of: ConfigOf,
    },
    /// Work with node keys: make one ahead, to know a node's PeerId before it starts.
    Key {
        #[command(subcommand)]
        command: KeyCommand,
    },
    /// Work with node records (ENRs).
    Enr {
        #[command(subcommand)]
        command: EnrCommand,
    },
    /// Show a running node's state: ids, record, addresses, NAT status with its reason,
    /// bootnodes, connections and counts.
    Status(ApiArgs),
    /// List the peers a running node knows: their records, how it met them and how it is
    /// connected to each (direct, relayed or none).
    Peers {
        #[command(flatten)]
        api: ApiArgs,
        /// Only the peer with this PeerId.
        #[arg(long, value_name = "PEER_ID")]
        peer_id: Option<String>,
        /// Only the peer with this node id (64 hex characters).
        #[arg(long, value_name = "HEX")]
        node_id: Option<String>,
    },
    /// Print a running node's events as they happen, one line each (records learned, NAT
    /// status, connections, introductions, hole punches), until it stops or Ctrl-C.
    Watch(ApiArgs),
    /// Measure round trips to a peer over the connection the node would use, and say whether
    /// it is direct or relayed and over what (`--until-direct`: stop at the first direct
    /// answer, fail if none). Waits for a connection when none is open.
    Ping {
        #[command(flatten)]
        api: ApiArgs,
        /// The peer's PeerId (`peerfind peers` lists them).
        peer_id: String,
        /// Rounds to send (at most 1000).
        #[arg(short = 'c', long, default_value_t = 10)]
        count: u32,
        /// Stop at the first round answered over a direct connection; exit 1 if none is.
        #[arg(long)]
        until_direct: bool,
        /// Time between rounds (at least 100ms).
        #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
        interval: std::time::Duration,
        /// How long to wait for a connection when none is open (at most 2m).
        #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
        wait: std::time::Duration,
    },
    /// Tell from what the configured bootnodes see of this node whether its NAT maps a new
    /// port per destination ("varies by destination") or not ("endpoint independent"), which
    /// transports get out (UDP, TCP) and which get in, and the NAT verdict.
    Netcheck(ApiArgs),
    /// Ask a running node's probe over HTTP (on its `--metrics` address): exit 0 when it
    /// answers 200, 1 with the reason otherwise. The container image's HEALTHCHECK.
    Probe {
        /// The node's metrics address (its `--metrics`; 0.0.0.0 asks this host's loopback).
        #[arg(long, env = "PEERFIND_METRICS", default_value = peerfind::probe::DEFAULT_ADDR)]
        addr: SocketAddr,
        /// Ask `/readyz` (a bootnode connected and an address in the record) instead of
        /// `/healthz` (the node answers).
        #[arg(long)]
        ready: bool,
    },
}

/// Where the running node's API is, and how to print its answers.
#[derive(Debug, clap::Args)]
struct ApiArgs {
    /// Address of the node's status API (its `--api`).
    #[arg(long, env = "PEERFIND_API", default_value = "127.0.0.1:5052")]
    api: SocketAddr,
    /// Print JSON for scripts (for `watch`: one object per line) instead of text.
    #[arg(long)]
    json: bool,
}

impl ApiArgs {
    fn format(&self) -> client::Format {
        if self.json {
            client::Format::Json
        } else {
            client::Format::Table
        }
    }
}

#[derive(Debug, Subcommand)]
enum ConfigOf {
    /// A peer's configuration.
    Run(Box<Config>),
    /// A bootnode's configuration.
    Bootnode(Box<Config>),
}

#[derive(Debug, Subcommand)]
enum KeyCommand {
    /// Make a new secp256k1 key, store it in `--out` (mode 0600, never overwriting a file),
    /// and print the PeerId and node id it gives; run a node with it by `--key-file`.
    Generate {
        /// Where to store the key.
        #[arg(long, value_name = "FILE")]
        out: std::path::PathBuf,
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
    let (args, from_file) = with_config_file(std::env::args_os().collect())?;
    let cli = Cli::parse_from(&args);
    init_logging(cli.log_format);
    match cli.command {
        Command::Config { .. } => {
            let command = Cli::command();
            let matches = command.clone().get_matches_from(&args);
            let Some(("config", of)) = matches.subcommand() else {
                anyhow::bail!("no configuration to show");
            };
            let Some((name, values)) = of.subcommand() else {
                anyhow::bail!("say which: `peerfind config run` or `peerfind config bootnode`");
            };
            let defined = command
                .find_subcommand("config")
                .and_then(|c| c.find_subcommand(name))
                .context("no such command")?;
            print!("{}", file::effective(defined, values, &from_file));
            Ok(())
        }
        Command::Run(config) => run(Mode::Peer, config),
        Command::Bootnode(config) => run(Mode::Bootnode, config),
        Command::Key {
            command: KeyCommand::Generate { out },
        } => {
            let identity = peerfind::record::identity::Identity::generate(&out)?;
            println!("peer_id: {}", identity.peer_id());
            println!(
                "node_id: {}",
                identity.node_id().context("cannot derive the node id")?
            );
            Ok(())
        }
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
        Command::Status(args) => ask(client::status(args.api, args.format(), stdout())),
        Command::Peers {
            api,
            peer_id,
            node_id,
        } => ask(client::peers(
            api.api,
            peer_id,
            node_id,
            api.format(),
            stdout(),
        )),
        Command::Watch(args) => ask(client::watch(args.api, args.format(), stdout())),
        Command::Ping {
            api,
            peer_id,
            count,
            until_direct,
            interval,
            wait,
        } => ask(client::ping(
            api.api,
            client::PingArgs {
                peer_id,
                count,
                until_direct,
                interval,
                wait,
            },
            api.format(),
            stdout(),
        )),
        Command::Netcheck(args) => ask(client::netcheck(args.api, args.format(), stdout())),
        Command::Probe { addr, ready } => probe(addr, ready),
    }
}

/// The command line with the config file's flags put in front of the user's own, right after
/// `run` or `bootnode` (so the user's override them), and the flags the file gave. A file is
/// named by `--config` or `PEERFIND_CONFIG`; other commands take none.
fn with_config_file(mut args: Vec<OsString>) -> anyhow::Result<(Vec<OsString>, Vec<String>)> {
    let named = args.iter().enumerate().find_map(|(i, a)| {
        let a = a.to_str()?;
        match a.strip_prefix("--config") {
            Some("") => args.get(i + 1).cloned(),
            Some(v) => v.strip_prefix('=').map(OsString::from),
            None => None,
        }
    });
    let Some(path) = named.or_else(|| std::env::var_os("PEERFIND_CONFIG")) else {
        return Ok((args, Vec::new()));
    };
    let Some(at) = args.iter().position(|a| a == "run" || a == "bootnode") else {
        return Ok((args, Vec::new()));
    };
    let name = args[at].to_string_lossy().into_owned();
    let command = Cli::command();
    let of = command
        .find_subcommand(&name)
        .context("the command the config file is for")?;
    let extra = file::args(Path::new(&path), of, &name, |env| {
        std::env::var_os(env).is_some()
    })?;
    // Flags the file gave and the user did not (a user's flag overrides the file's).
    let flag_of = |a: &OsString| {
        let a = a.to_str()?.strip_prefix("--")?;
        Some(a.split('=').next().unwrap_or(a).to_owned())
    };
    let given: Vec<String> = args.iter().filter_map(flag_of).collect();
    let from_file = extra
        .iter()
        .filter_map(flag_of)
        .filter(|f| !given.contains(f))
        .collect();
    args.splice(at + 1..at + 1, extra);
    Ok((args, from_file))
}

fn run(mode: Mode, mut config: Config) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(async {
        // Bootnodes named by URL are fetched first, which may take long: a stop meanwhile is a
        // normal end (the node may be PID 1 in a container, where SIGTERM has no default).
        // Once watched, a signal is no longer fatal by default, so one that comes before the
        // node's own watch starts is looked for again then. Without a URL nothing is watched.
        let mut stop = None;
        if config
            .bootnode
            .iter()
            .any(|b| matches!(b, BootnodeSource::Url(_)))
        {
            use tokio::signal::unix::{SignalKind, signal};
            let mut term = signal(SignalKind::terminate()).context("cannot watch SIGTERM")?;
            let mut int = signal(SignalKind::interrupt()).context("cannot watch SIGINT")?;
            tokio::select! {
                () = config.resolve_bootnodes() => {}
                _ = term.recv() => return Ok(()),
                _ = int.recv() => return Ok(()),
            }
            stop = Some((term, int));
        } else {
            config.resolve_bootnodes().await;
        }
        let (api_addr, metrics_addr) = (config.api, config.metrics);
        let api_limits = api::server::Limits {
            max_connections: config.api_max_connections,
            idle_timeout: config.api_idle_timeout,
        };
        let mut registry = libp2p::metrics::Registry::default();
        let node = Node::new(
            mode,
            config,
            metrics_addr.is_some().then_some(&mut registry),
        )?;
        let metrics = metrics_addr.map(|addr| (addr, registry));
        let mut services =
            api::Services::start(api_addr, api_limits, metrics, node.handle(), mode).await?;
        if let Some((mut term, mut int)) = stop {
            let signalled = |s: &mut tokio::signal::unix::Signal| s.recv().now_or_never().is_some();
            if signalled(&mut term) || signalled(&mut int) {
                services.stop().await;
                return Ok(());
            }
        }
        let outcome = tokio::select! {
            result = node.run() => result.map_err(anyhow::Error::from),
            error = services.failed() => Err(error.into()),
        };
        services.stop().await;
        outcome
    })
}

/// Runs an API command; when it fails, prints its one-line reason and exits with 1 (the
/// reason is the whole story: no backtrace, no "caused by"). A reader that closed the pipe
/// (`peerfind watch | head -n 1`) is a normal end.
fn ask(command: impl Future<Output = Result<(), client::ClientError>>) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    match runtime.block_on(command) {
        Ok(()) => Ok(()),
        Err(client::ClientError::Output(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    }
}

/// `peerfind probe`: one line, and exit code 0 when the probe passed, 1 when not.
fn probe(addr: SocketAddr, ready: bool) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    match runtime.block_on(peerfind::probe::check(addr, ready)) {
        Ok(answer) => {
            println!("{answer}");
            Ok(())
        }
        Err(e) => {
            println!("{e}");
            std::process::exit(1);
        }
    }
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
