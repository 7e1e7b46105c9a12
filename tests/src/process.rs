//! The real `peerfind` binary as a test host runs it: started with JSON logs, its log lines
//! collected, awaited with a bound, and printed whole when a test fails.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context as _, bail};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::watch;

use crate::api::{Api, State};
use crate::lab::HostDialer;

/// The `peerfind` binary built next to this one (`target/<profile>/peerfind`), or
/// `PEERFIND_BIN` when set. The test command builds it before running the tests.
pub fn binary() -> PathBuf {
    if let Some(path) = std::env::var_os("PEERFIND_BIN") {
        return path.into();
    }
    let exe = std::env::current_exe().unwrap_or_default();
    // A test binary is target/<profile>/deps/<name>, a helper binary target/<profile>/<name>;
    // peerfind is target/<profile>/peerfind.
    let dir = exe.parent().map(PathBuf::from).unwrap_or_default();
    let dir = if dir.ends_with("deps") {
        dir.parent().map(PathBuf::from).unwrap_or_default()
    } else {
        dir
    };
    let bin = dir.join("peerfind");
    assert!(
        bin.exists(),
        "{} is missing: build it first with `cargo build -p peerfind` (the README's test command does)",
        bin.display()
    );
    bin
}

/// Bound on the wait for a node's status API: it binds before the node starts, so this only
/// stops a node that never starts from hanging the test.
const API_WAIT: Duration = Duration::from_secs(20);

/// A running `peerfind` process and everything it logged.
pub struct Peerfind {
    name: String,
    child: Child,
    lines: Arc<Mutex<Vec<Value>>>,
    seen: watch::Receiver<usize>,
    data_dir: tempfile::TempDir,
    /// How to reach the node's API when it runs in a lab host.
    dialer: Option<HostDialer>,
    /// Its status API, from the first [`Peerfind::api`] on.
    api: Option<Api>,
}

impl Peerfind {
    /// Starts `cmd` (a `peerfind` command line, possibly wrapped to run in a lab host) with
    /// JSON logs and a fresh data directory. `name` labels its log in failure output.
    ///
    /// The status API goes on a free loopback port (`PEERFIND_API=127.0.0.1:0`) unless `cmd`
    /// sets `PEERFIND_API` or `--api`, so nodes sharing a host never fight over the default
    /// port; [`Peerfind::api_addr`] tells where it went.
    pub fn start(name: &str, mut cmd: Command) -> anyhow::Result<Self> {
        let data_dir = tempfile::tempdir().context("temporary data directory")?;
        if !cmd
            .as_std()
            .get_envs()
            .any(|(key, _)| key == "PEERFIND_API")
        {
            cmd.env("PEERFIND_API", "127.0.0.1:0");
        }
        cmd.env("PEERFIND_LOG_FORMAT", "json")
            .env("PEERFIND_DATA_DIR", data_dir.path())
            .env(
                "RUST_LOG",
                std::env::var("PEERFIND_TEST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd.spawn().with_context(|| format!("starting {name}"))?;
        let stderr = child.stderr.take().context("no stderr")?;
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (tx, seen) = watch::channel(0usize);
        let sink = lines.clone();
        tokio::spawn(async move {
            let mut reader = BufReader::new(stderr).lines();
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
        Ok(Self {
            name: name.to_owned(),
            child,
            lines,
            seen,
            data_dir,
            dialer: None,
            api: None,
        })
    }

    /// Marks the node as running in a lab host, whose loopback its API listens on:
    /// [`Peerfind::api`] then reaches it through `dialer`.
    pub fn in_host(mut self, dialer: HostDialer) -> Self {
        self.dialer = Some(dialer);
        self
    }

    /// The node's status API: connected, and its watcher subscribed, at the first call; the
    /// same client and watcher after that (every event since the first call is kept).
    pub async fn api(&mut self) -> anyhow::Result<&mut Api> {
        if self.api.is_none() {
            let addr = self.api_addr().await?;
            let api = Api::connect(&self.name, addr, self.dialer.clone()).await?;
            self.api = Some(api);
        }
        self.api.as_mut().context("the API client")
    }

    /// [`Api::until`] on the node's API: waits until `check` gives a value for its state,
    /// checking again on each event.
    pub async fn until<T>(
        &mut self,
        what: &str,
        within: Duration,
        check: impl FnMut(&State) -> Option<T>,
    ) -> anyhow::Result<T> {
        self.api().await?.until(what, within, check).await
    }

    /// [`Api::until_polled`] on the node's API, for state that changes without an event (the
    /// node's listen and external addresses, identify, dial counters).
    pub async fn until_polled<T>(
        &mut self,
        what: &str,
        within: Duration,
        check: impl FnMut(&State) -> Option<T>,
    ) -> anyhow::Result<T> {
        self.api().await?.until_polled(what, within, check).await
    }

    /// The node's PeerId, from its API.
    pub async fn peer_id(&mut self) -> anyhow::Result<String> {
        self.api().await?.peer_id().await
    }

    /// The node's state now, from its API.
    pub async fn state(&mut self) -> anyhow::Result<State> {
        self.api().await?.state().await
    }

    /// A `peerfind` command with `args`, run directly on this host.
    pub fn command<I, S>(args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let mut cmd = Command::new(binary());
        cmd.args(args);
        cmd
    }

    /// Waits up to `timeout` for a log line with `message` for which `pred` holds, and
    /// returns it. Lines logged before the call count too.
    pub async fn wait_for(
        &mut self,
        message: &str,
        timeout: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> anyhow::Result<Value> {
        self.wait_for_any(&[message], timeout, pred).await
    }

    /// [`Peerfind::wait_for`] for a line with any of `messages`.
    pub async fn wait_for_any(
        &mut self,
        messages: &[&str],
        timeout: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> anyhow::Result<Value> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut checked = 0;
        let wanted = |v: &Value| v["message"].as_str().is_some_and(|m| messages.contains(&m));
        loop {
            {
                let all = self.lines.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(hit) = all[checked..].iter().find(|v| wanted(v) && pred(v)) {
                    return Ok(hit.clone());
                }
                checked = all.len();
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                bail!(
                    "{} exited ({status}) before logging {messages:?}",
                    self.name
                );
            }
            match tokio::time::timeout_at(deadline, self.seen.changed()).await {
                Ok(Ok(())) => {}
                // The log closed: the process is exiting; look once more, then report.
                Ok(Err(_)) => {
                    let _ = tokio::time::timeout_at(deadline, self.child.wait()).await;
                    if tokio::time::Instant::now() >= deadline || self.child.try_wait()?.is_some() {
                        bail!("{} stopped logging before {messages:?}", self.name);
                    }
                }
                Err(_) => bail!("{}: no {messages:?} within {timeout:?}", self.name),
            }
        }
    }

    /// The address the node's status API is bound to, from its "API listening" line: the one
    /// thing tests read from the log to find a node, since a node bound to port 0 tells its
    /// port nowhere else.
    pub async fn api_addr(&mut self) -> anyhow::Result<SocketAddr> {
        let line = self.wait_for("API listening", API_WAIT, |_| true).await?;
        field(&line, "address")
            .parse()
            .with_context(|| format!("{}: API address in {line}", self.name))
    }

    /// The address the node's metrics endpoint (`--metrics`, with its probes) is bound to,
    /// from its "metrics listening" line: a node bound to port 0 tells it nowhere else.
    pub async fn metrics_addr(&mut self) -> anyhow::Result<SocketAddr> {
        let line = self
            .wait_for("metrics listening", API_WAIT, |_| true)
            .await?;
        field(&line, "address")
            .parse()
            .with_context(|| format!("{}: metrics address in {line}", self.name))
    }

    /// Every log line so far with `message`.
    pub fn lines_with(&self, message: &str) -> Vec<Value> {
        let all = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        all.iter()
            .filter(|v| v["message"].as_str() == Some(message))
            .cloned()
            .collect()
    }

    /// Stops the process where it is (SIGSTOP) until [`Peerfind::resume`]: its peers' packets
    /// wait in its sockets. A test holds a node still this way while it gets ready to watch
    /// something that would otherwise happen within a round trip.
    pub fn pause(&self) -> anyhow::Result<()> {
        self.signal(nix::sys::signal::Signal::SIGSTOP)
    }

    /// Lets a paused process run on (SIGCONT).
    pub fn resume(&self) -> anyhow::Result<()> {
        self.signal(nix::sys::signal::Signal::SIGCONT)
    }

    fn signal(&self, signal: nix::sys::signal::Signal) -> anyhow::Result<()> {
        let pid = self.child.id().context("the process has exited")?;
        let pid = nix::unistd::Pid::from_raw(i32::try_from(pid)?);
        nix::sys::signal::kill(pid, signal)?;
        Ok(())
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Sends SIGTERM and waits for the process to exit.
    pub async fn stop(&mut self) -> anyhow::Result<std::process::ExitStatus> {
        if let Some(pid) = self.child.id() {
            let pid = nix::unistd::Pid::from_raw(i32::try_from(pid)?);
            nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM)?;
        }
        Ok(tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await??)
    }

    /// Kills the process at once (SIGKILL: no shutdown, as a crash or `kill -9`) and waits
    /// for it to be gone.
    pub async fn kill(&mut self) -> anyhow::Result<std::process::ExitStatus> {
        self.child.start_kill()?;
        Ok(tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await??)
    }

    /// The node's data directory (its key and record), for a restart with the same identity
    /// (`--data-dir`, which wins over the fresh one a new start sets). It lives as long as
    /// this value.
    pub fn data_dir(&self) -> &std::path::Path {
        self.data_dir.path()
    }

    /// The whole log, one line per entry.
    pub fn log(&self) -> String {
        let all = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        all.iter().map(|v| format!("{v}\n")).collect()
    }
}

impl Drop for Peerfind {
    fn drop(&mut self) {
        if std::thread::panicking() || std::env::var_os("PEERFIND_TEST_SHOW_LOGS").is_some() {
            eprintln!(
                "----- log of {} -----\n{}----- end of {} -----",
                self.name,
                self.log(),
                self.name
            );
        }
    }
}

/// Decodes `enr` with the real binary's `peerfind enr decode --json`.
pub async fn decode_enr(enr: &str) -> anyhow::Result<Value> {
    let out = Peerfind::command(["enr", "decode", "--json", enr])
        .output()
        .await?;
    if !out.status.success() {
        bail!(
            "peerfind enr decode failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(serde_json::from_slice(&out.stdout)?)
}

/// A field of a log line as a string ("" when absent).
pub fn field<'a>(line: &'a Value, name: &str) -> &'a str {
    line[name].as_str().unwrap_or_default()
}

/// A multiaddr without its trailing `/p2p/…`.
pub fn strip_p2p(addr: &str) -> &str {
    addr.split("/p2p/").next().unwrap_or(addr)
}
