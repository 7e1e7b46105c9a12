//! The status API as a user inside a lab host sees it: `peerfind status|peers|watch --json`,
//! each a gRPC client of the node on that host's loopback.

use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout};

use crate::lab::{Host, Lab};
use crate::process::binary;
use crate::scenario::WAIT;

/// The API address inside a host: the default port, on the host's own loopback.
pub const API: &str = "127.0.0.1:5052";

/// Arguments that put a node's API on [`API`].
pub fn api_args() -> Vec<String> {
    vec!["--api".into(), API.into()]
}

/// Runs `peerfind ARGS --json --api API` inside `host` and parses what it prints.
pub async fn json(lab: &Lab, host: Host, args: &[&str]) -> anyhow::Result<Value> {
    let mut cmd = lab.tokio_command(host, binary());
    cmd.args(args)
        .args(["--json", "--api", API])
        .kill_on_drop(true);
    let out = tokio::time::timeout(WAIT, cmd.output())
        .await
        .with_context(|| format!("peerfind {args:?} in {host} did not end"))??;
    if !out.status.success() {
        bail!("peerfind {args:?} in {host}: {out:?}");
    }
    serde_json::from_slice(&out.stdout).with_context(|| format!("peerfind {args:?} in {host}"))
}

/// Runs `peerfind ARGS --json` in `host` every [`POLL_EVERY`] until `pred` accepts the
/// answer, for at most `within`; returns that answer. A node that does not answer yet (its
/// API not up) counts as "not yet".
pub async fn json_until(
    lab: &Lab,
    host: Host,
    args: &[&str],
    within: Duration,
    pred: impl Fn(&Value) -> bool,
) -> anyhow::Result<Value> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let last = match json(lab, host, args).await {
            Ok(answer) if pred(&answer) => return Ok(answer),
            Ok(answer) => answer.to_string(),
            Err(e) => format!("{e:#}"),
        };
        if tokio::time::Instant::now() >= deadline {
            bail!("peerfind {args:?} in {host}: not as expected within {within:?}; last: {last}");
        }
        tokio::time::sleep(POLL_EVERY).await;
    }
}

/// Pause between two polls of [`json_until`].
pub const POLL_EVERY: Duration = Duration::from_millis(200);

/// What `peerfind peers --peer-id PEER --json` in `host` says of `peer`.
pub async fn peer_entry(lab: &Lab, host: Host, peer: &str) -> anyhow::Result<Value> {
    let list = json(lab, host, &["peers", "--peer-id", peer]).await?;
    match list.as_array().map(Vec::as_slice) {
        Some([one]) => Ok(one.clone()),
        _ => bail!("{host} lists {peer} not exactly once: {list}"),
    }
}

/// `peerfind watch --json` running inside a host.
pub struct Watcher {
    host: Host,
    child: Child,
    lines: Lines<BufReader<ChildStdout>>,
    /// Every event read so far.
    seen: Vec<Value>,
}

impl Watcher {
    /// Starts the watcher in `host` and returns once it is subscribed (it says so on stderr
    /// before the first event).
    pub async fn start(lab: &Lab, host: Host) -> anyhow::Result<Self> {
        let mut cmd = lab.tokio_command(host, binary());
        cmd.args(["watch", "--json", "--api", API])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd.spawn().context("starting peerfind watch")?;
        let stderr = child.stderr.take().context("no stderr")?;
        let stdout = child.stdout.take().context("no stdout")?;
        let banner = tokio::time::timeout(WAIT, BufReader::new(stderr).lines().next_line())
            .await
            .context("the watcher did not connect")??
            .unwrap_or_default();
        if !banner.starts_with("watching") {
            bail!("the watcher in {host} said: {banner}");
        }
        Ok(Self {
            host,
            child,
            lines: BufReader::new(stdout).lines(),
            seen: Vec::new(),
        })
    }

    /// The first event since the watcher started whose `kind` is one of `kinds` and that
    /// `pred` accepts: one already read, or else the next such one within `within`.
    /// Every event read is kept, so a wait never loses one that a later wait looks for.
    pub async fn wait_for(
        &mut self,
        kinds: &[&str],
        within: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> anyhow::Result<Value> {
        let matches = |event: &Value| {
            let kind = event["kind"].as_str().unwrap_or_default();
            kinds.contains(&kind) && pred(event)
        };
        if let Some(event) = self.seen.iter().find(|e| matches(e)) {
            return Ok(event.clone());
        }
        let host = self.host;
        let wait = async {
            loop {
                let line = self
                    .lines
                    .next_line()
                    .await?
                    .with_context(|| format!("the watcher in {host} stopped"))?;
                let event: Value = serde_json::from_str(&line)
                    .with_context(|| format!("the watcher in {host} printed {line}"))?;
                self.seen.push(event.clone());
                if matches(&event) {
                    return anyhow::Ok(event);
                }
            }
        };
        tokio::time::timeout(within, wait).await.with_context(|| {
            let seen: Vec<String> = self.seen.iter().map(Value::to_string).collect();
            format!(
                "no {kinds:?} event in {host} within {within:?}; it delivered:\n{}",
                seen.join("\n")
            )
        })?
    }

    /// Stops the watcher.
    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}
