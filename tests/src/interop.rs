//! Foreign libp2p peers for the interop tests: js-libp2p (`tests/interop/js`), py-libp2p
//! (`tests/interop/py`) and plain rust-libp2p (`src/bin/interop-rust.rs`). Each is a probe
//! that prints one JSON object per line for each thing it observed (`identify`, `ping`,
//! `reserved`, `done`, …); this module runs them and waits for those lines.
//!
//! `scripts/test.sh` installs what the probes need: `npm ci` in `tests/interop/js`, and a
//! virtualenv with the pinned `tests/interop/py/requirements.txt` in `tests/interop/py/.venv`.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context as _, bail};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::watch;

use crate::lab::{Host, Lab};
use crate::process::binary;

/// Bound on one probe's run: each gives up after 30 s itself; this only stops a hung one.
pub const PROBE_WAIT: Duration = Duration::from_secs(45);

/// A libp2p implementation that is not peerfind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Implementation {
    /// js-libp2p 3 on Node.js.
    Js,
    /// py-libp2p 0.8 on Python 3.
    Py,
    /// rust-libp2p 0.57 without any peerfind code.
    Rust,
}

impl Implementation {
    /// Every implementation.
    pub const ALL: [Implementation; 3] = [Self::Js, Self::Py, Self::Rust];

    /// Its name in test output.
    pub fn name(self) -> &'static str {
        match self {
            Self::Js => "js-libp2p",
            Self::Py => "py-libp2p",
            Self::Rust => "rust-libp2p",
        }
    }

    /// The transports its probe dials: all three speak TCP and QUIC v1.
    pub fn transports(self) -> &'static [&'static str] {
        &["tcp", "quic"]
    }

    /// Whether its probe can send several pings on one stream (`--pings N`): py-libp2p's,
    /// whose own ping service does so.
    pub fn pings_on_one_stream(self) -> bool {
        self == Self::Py
    }

    /// A command that runs its probe with `args`.
    pub fn command<I, S>(self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let dir = interop_dir();
        let mut cmd = match self {
            Self::Js => {
                let mut c = Command::new("node");
                c.arg(dir.join("js/probe.mjs"));
                c
            }
            Self::Py => {
                let mut c = Command::new(dir.join("py/.venv/bin/python"));
                c.arg(dir.join("py/probe.py"));
                c
            }
            Self::Rust => {
                let bin = binary().with_file_name("interop-rust");
                Command::new(bin)
            }
        };
        cmd.args(args);
        cmd
    }
}

/// `tests/interop`, where the js and py probes live.
pub fn interop_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("interop")
}

/// A running probe and every JSON line it printed.
pub struct Probe {
    name: String,
    child: Child,
    lines: Arc<Mutex<Vec<Value>>>,
    seen: watch::Receiver<usize>,
    stderr: Arc<Mutex<String>>,
    /// The tasks reading its stdout and stderr; each ends when its pipe closes.
    readers: Vec<tokio::task::JoinHandle<()>>,
}

impl Probe {
    /// Starts `implementation`'s probe with `args`; `name` labels it in failure output.
    pub fn start<I, S>(name: &str, implementation: Implementation, args: I) -> anyhow::Result<Self>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        Self::spawn(name, implementation, implementation.command(args))
    }

    /// [`Probe::start`] inside a lab host; the lab's teardown kills it if it still runs.
    pub fn start_in<I, S>(
        lab: &Lab,
        host: Host,
        name: &str,
        implementation: Implementation,
        args: I,
    ) -> anyhow::Result<Self>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let direct = implementation.command(args);
        let direct = direct.as_std();
        let mut cmd = lab.tokio_command(host, direct.get_program());
        cmd.args(direct.get_args());
        Self::spawn(name, implementation, cmd)
    }

    fn spawn(name: &str, implementation: Implementation, mut cmd: Command) -> anyhow::Result<Self> {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd
            .spawn()
            .with_context(|| format!("starting the {} probe", implementation.name()))?;
        let stdout = child.stdout.take().context("no stdout")?;
        let stderr = child.stderr.take().context("no stderr")?;
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (tx, seen) = watch::channel(0usize);
        let sink = lines.clone();
        let out_reader = tokio::spawn(async move {
            let mut reader = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                let value = serde_json::from_str(&line)
                    .unwrap_or_else(|_| serde_json::json!({ "raw": line }));
                let n = {
                    let mut all = sink.lock().unwrap_or_else(|e| e.into_inner());
                    all.push(value);
                    all.len()
                };
                let _ = tx.send(n);
            }
        });
        let err_sink = Arc::new(Mutex::new(String::new()));
        let errs = err_sink.clone();
        let err_reader = tokio::spawn(async move {
            let mut reader = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                let mut all = errs.lock().unwrap_or_else(|e| e.into_inner());
                // Bounded: a chatty probe keeps its first 64 KiB of stderr.
                if all.len() < 64 * 1024 {
                    all.push_str(&line);
                    all.push('\n');
                }
            }
        });
        Ok(Self {
            name: name.to_owned(),
            child,
            lines,
            seen,
            stderr: err_sink,
            readers: vec![out_reader, err_reader],
        })
    }

    /// Waits up to `timeout` for a line whose `event` is `event` and that `pred` accepts.
    pub async fn wait_for(
        &mut self,
        event: &str,
        timeout: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> anyhow::Result<Value> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            {
                let all = self.lines.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(hit) = all
                    .iter()
                    .find(|v| v["event"].as_str() == Some(event) && pred(v))
                {
                    return Ok(hit.clone());
                }
            }
            match tokio::time::timeout_at(deadline, self.seen.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => bail!(
                    "{} ended before printing {event:?}:\n{}",
                    self.name,
                    self.output()
                ),
                Err(_) => bail!(
                    "{}: no {event:?} within {timeout:?}:\n{}",
                    self.name,
                    self.output()
                ),
            }
        }
    }

    /// Waits for the probe to exit; says whether it succeeded.
    /// Everything it printed has been read when this returns.
    pub async fn wait(&mut self, timeout: Duration) -> anyhow::Result<bool> {
        let deadline = tokio::time::Instant::now() + timeout;
        let status = tokio::time::timeout_at(deadline, self.child.wait())
            .await
            .with_context(|| format!("{} did not end within {timeout:?}", self.name))??;
        // Its exit can be noticed before the last lines it wrote are read.
        for reader in std::mem::take(&mut self.readers) {
            tokio::time::timeout_at(deadline, reader)
                .await
                .with_context(|| format!("{} kept its output open after exiting", self.name))??;
        }
        Ok(status.success())
    }

    /// Every line with `event`.
    pub fn events(&self, event: &str) -> Vec<Value> {
        let all = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        all.iter()
            .filter(|v| v["event"].as_str() == Some(event))
            .cloned()
            .collect()
    }

    /// What it printed, stdout then stderr, for failure messages.
    pub fn output(&self) -> String {
        let all = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        let mut out: String = all.iter().map(|v| format!("{v}\n")).collect();
        out.push_str("--- stderr ---\n");
        out.push_str(&self.stderr.lock().unwrap_or_else(|e| e.into_inner()));
        out
    }
}

/// What one `dial` probe saw of the peer it dialed.
#[derive(Debug, Clone)]
pub struct Dialed {
    /// Its identify line: `agent`, `protocols`, `listen_addrs`, `observed_addr`.
    pub identify: Value,
    /// Its ping line: `rtt_us`.
    pub ping: Value,
    /// Its pong lines (`i`, `rtt_us`), one per ping answered, when it printed them (the py
    /// probe does).
    pub pongs: Vec<Value>,
}

/// Runs `implementation`'s probe once: dial `addr`, identify, ping, exit. An error says
/// what the probe printed.
pub async fn dial_once(implementation: Implementation, addr: &str) -> anyhow::Result<Dialed> {
    dial_pinging(implementation, addr, 1).await
}

/// [`dial_once`] with `pings` pings on one stream, each answered: the probe must print a pong
/// for every one. More than one needs a probe that can
/// ([`Implementation::pings_on_one_stream`]).
pub async fn dial_pinging(
    implementation: Implementation,
    addr: &str,
    pings: usize,
) -> anyhow::Result<Dialed> {
    let target = addr.rsplit("/p2p/").next().unwrap_or_default().to_owned();
    let mut args = vec!["dial".to_owned(), addr.to_owned()];
    if pings != 1 {
        if !implementation.pings_on_one_stream() {
            bail!(
                "the {} probe sends one ping a stream",
                implementation.name()
            );
        }
        args.extend(["--pings".to_owned(), pings.to_string()]);
    }
    let mut probe = Probe::start(implementation.name(), implementation, args)?;
    let ok = probe.wait(PROBE_WAIT).await?;
    let done = probe.events("done");
    if !ok || done.first().and_then(|d| d["ok"].as_bool()) != Some(true) {
        bail!(
            "{} dial of {addr} failed:\n{}",
            implementation.name(),
            probe.output()
        );
    }
    let of_target = |event: &str| {
        probe
            .events(event)
            .into_iter()
            .find(|v| v["peer"].as_str() == Some(target.as_str()))
    };
    let (Some(identify), Some(ping)) = (of_target("identify"), of_target("ping")) else {
        bail!(
            "{} printed no identify or ping of {target}:\n{}",
            implementation.name(),
            probe.output()
        );
    };
    let pongs: Vec<Value> = probe
        .events("pong")
        .into_iter()
        .filter(|v| v["peer"].as_str() == Some(target.as_str()))
        .collect();
    if pings != 1 && pongs.len() != pings {
        bail!(
            "{} got {} pongs of {target} for {pings} pings on one stream:\n{}",
            implementation.name(),
            pongs.len(),
            probe.output()
        );
    }
    Ok(Dialed {
        identify,
        ping,
        pongs,
    })
}

/// The probe's arguments to dial through `relay` (a `/p2p/` multiaddr) to `peer`.
pub fn circuit(relay: &str, peer: &str) -> String {
    format!("{relay}/p2p-circuit/p2p/{peer}")
}
