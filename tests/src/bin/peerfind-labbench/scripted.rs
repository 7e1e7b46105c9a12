//! Plain rust-libp2p's scripted hole punch (`scripted-punch`) in a lab: the yardstick for
//! peerfind's own punch, in the eim/eim scenario and in the matrix's NAT'd × NAT'd cells.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context as _, bail};
use peerfind_tests::lab::{Host, Lab, Topology};
use peerfind_tests::scenario::{self, PORT, bootnode, peer_id};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Child;
use tokio::sync::Mutex;

use super::matrix::quietly;
use super::now_ms;

/// A listener on Alice reserves on the bootnode's relay; a dialer on Bob, told the relay and
/// the listener's PeerId, dials the circuit and DCUtR punches. The time (ms) from the dialer's
/// start to its direct connection, or an error when there was none within `wait` (each step
/// before, the listener's start and reservation, gets as long: behind a router that blocks
/// the transport there is none). Its busy moments hold `quiet` (see [`quietly`]).
pub(crate) async fn punch(
    topology: Topology,
    transport: &str,
    wait: Duration,
    quiet: &Mutex<()>,
) -> anyhow::Result<f64> {
    let mut hold = Some(quiet.lock().await);
    let lab = Lab::up(topology)?;
    let (mut boot, _) = bootnode(&lab, &[transport]).await?;
    let boot_id = peer_id(&mut boot).await?;
    let ip = lab.ip(Host::Bootnode);
    let (relay, local) = match transport {
        "tcp" => (
            format!("/ip4/{ip}/tcp/{PORT}/p2p/{boot_id}"),
            format!("/ip4/0.0.0.0/tcp/{PORT}"),
        ),
        _ => (
            format!("/ip4/{ip}/udp/{PORT}/quic-v1/p2p/{boot_id}"),
            format!("/ip4/0.0.0.0/udp/{PORT}/quic-v1"),
        ),
    };
    let (local, relay) = (local.as_str(), relay.as_str());
    // The probes give up on their own a little after the bench stops waiting for them.
    let timeout = format!("{}s", wait.as_secs() + 5);
    let mut listener = Probe::start(
        &lab,
        Host::Alice,
        &[
            "--role",
            "listen",
            "--listen",
            local,
            "--relay",
            relay,
            "--timeout",
            &timeout,
        ],
    )?;
    let started = listener.wait("started", wait).await?;
    let target = started["peer_id"].as_str().unwrap_or_default().to_owned();
    quietly(&mut hold, listener.wait("reserved", wait)).await?;
    if hold.is_none() {
        hold = Some(quiet.lock().await);
    }
    let begun = now_ms();
    let mut dialer = Probe::start(
        &lab,
        Host::Bob,
        &[
            "--role",
            "dial",
            "--listen",
            local,
            "--relay",
            relay,
            "--target",
            target.as_str(),
            "--timeout",
            &timeout,
        ],
    )?;
    let direct = quietly(&mut hold, dialer.wait("direct", wait)).await;
    if hold.is_none() {
        hold = Some(quiet.lock().await);
    }
    drop(dialer);
    drop(listener);
    scenario::stop_all(&mut [&mut boot]).await;
    drop(lab);
    drop(hold);
    let at = direct?["t_ms"].as_f64().context("t_ms")?;
    Ok(at - begun)
}

/// A running `scripted-punch` and the steps it printed.
struct Probe {
    _child: Child,
    lines: tokio::sync::mpsc::Receiver<Value>,
}

impl Probe {
    fn start(lab: &Lab, host: Host, args: &[&str]) -> anyhow::Result<Probe> {
        let mut cmd = lab.tokio_command(host, probe_binary());
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true);
        let mut child = cmd.spawn().context("starting scripted-punch")?;
        let stdout = child.stdout.take().context("no stdout")?;
        let (tx, lines) = tokio::sync::mpsc::channel(256);
        tokio::spawn(async move {
            let mut reader = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                if let Ok(value) = serde_json::from_str(&line)
                    && tx.send(value).await.is_err()
                {
                    return;
                }
            }
        });
        Ok(Probe {
            _child: child,
            lines,
        })
    }

    /// The next step called `event`, within `wait`.
    async fn wait(&mut self, event: &str, wait: Duration) -> anyhow::Result<Value> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            match tokio::time::timeout_at(deadline, self.lines.recv()).await {
                Ok(Some(line)) if line["event"] == event => return Ok(line),
                Ok(Some(line)) if line["event"] == "timeout" => {
                    bail!("probe gave up before {event}")
                }
                Ok(Some(_)) => {}
                Ok(None) => bail!("probe exited before {event}"),
                Err(_) => bail!("no {event} within {wait:?}"),
            }
        }
    }
}

/// `scripted-punch`, built next to this binary.
fn probe_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    exe.parent()
        .map(|d| d.join("scripted-punch"))
        .unwrap_or_default()
}
