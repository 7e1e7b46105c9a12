//! The design note's cast in a lab: a bootnode, and peers started in lab hosts, each the real
//! binary. Shared by the lab tests so each reads as its diagram.

use std::time::Duration;

use serde_json::Value;

use crate::lab::{Host, Lab};
use crate::process::{Peerfind, binary, decode_enr};

/// Bound on every wait in a lab test: long enough for AutoNAT's dial-back timeouts (5 s) and
/// a probe or two on a loaded machine; it only stops a broken run from hanging.
pub const WAIT: Duration = Duration::from_secs(45);

/// The port every peerfind in the lab listens on (each host has its own namespace).
pub const PORT: u16 = 9000;

/// Listen flags for one transport ("tcp" or "quic") on all of a host's interfaces.
pub fn listen(transport: &str) -> Vec<String> {
    let addr = match transport {
        "tcp" => format!("/ip4/0.0.0.0/tcp/{PORT}"),
        _ => format!("/ip4/0.0.0.0/udp/{PORT}/quic-v1"),
    };
    vec!["--listen".into(), addr]
}

/// Starts a bootnode in the lab's bootnode host listening on `transports`; returns it and its
/// record text once it advertises its public address.
pub async fn bootnode(lab: &Lab, transports: &[&str]) -> anyhow::Result<(Peerfind, String)> {
    bootnode_with(lab, transports, &[]).await
}

/// [`bootnode`] with more arguments (an API address, a data directory to restart from).
pub async fn bootnode_with(
    lab: &Lab,
    transports: &[&str],
    extra: &[String],
) -> anyhow::Result<(Peerfind, String)> {
    bootnode_in(lab, Host::Bootnode, transports, extra).await
}

/// [`bootnode_with`] in a public `host` of choice: a second bootnode in Charlie's.
pub async fn bootnode_in(
    lab: &Lab,
    host: Host,
    transports: &[&str],
    extra: &[String],
) -> anyhow::Result<(Peerfind, String)> {
    let mut args = vec!["bootnode".to_owned()];
    for t in transports {
        args.extend(listen(t));
    }
    args.extend(extra.iter().cloned());
    let mut cmd = lab.tokio_command(host, binary());
    cmd.args(&args);
    let name = match host {
        Host::Bootnode => "bootnode".to_owned(),
        other => format!("bootnode in {other}"),
    };
    let mut boot = Peerfind::start(&name, cmd)?.in_host(lab.dialer(host));
    let public = lab.ip(host);
    // Each change of its record is an event (`own_record_changed`).
    let enr = boot
        .until("the bootnode's record with its public address", WAIT, |s| {
            let record = s.record();
            (record.ip == Some(public) && record.has(transports)).then(|| s.status.enr.clone())
        })
        .await?;
    Ok((boot, enr))
}

/// Starts `peerfind run` in `host` with `args`, joined through `bootnode_enr`.
pub fn peer(
    lab: &Lab,
    host: Host,
    bootnode_enr: &str,
    args: &[String],
) -> anyhow::Result<Peerfind> {
    let mut cmd = lab.tokio_command(host, binary());
    cmd.args(["run", "--bootnode", bootnode_enr]).args(args);
    Ok(Peerfind::start(host.name(), cmd)?.in_host(lab.dialer(host)))
}

/// [`peer`], with its API's watcher subscribed before the node can meet anyone: the bootnode
/// `boot` is held still (SIGSTOP) from before the start until the watcher is subscribed, so
/// the events the node's API delivers are every one since its start (its first NAT verdict
/// and first connections included).
pub async fn peer_watched(
    lab: &Lab,
    host: Host,
    boot: &Peerfind,
    bootnode_enr: &str,
    args: &[String],
) -> anyhow::Result<Peerfind> {
    boot.pause()?;
    let started = async {
        let mut node = peer(lab, host, bootnode_enr, args)?;
        node.api().await?;
        anyhow::Ok(node)
    }
    .await;
    boot.resume()?;
    started
}

/// The node's PeerId, from its API.
pub async fn peer_id(node: &mut Peerfind) -> anyhow::Result<String> {
    node.peer_id().await
}

/// Two keys made ahead in `dir` (`peerfind key generate`), the one with the smaller PeerId
/// first: strategy rule 7 makes its node the one that acts between two NAT'd peers. Each
/// as its file and PeerId.
pub async fn ordered_keys(
    dir: &std::path::Path,
) -> anyhow::Result<[(std::path::PathBuf, String); 2]> {
    let mut keys = Vec::new();
    for name in ["first.key", "second.key"] {
        let key = dir.join(name);
        let made = Peerfind::command(["key", "generate", "--out"])
            .arg(&key)
            .output()
            .await?;
        anyhow::ensure!(made.status.success(), "peerfind key generate: {made:?}");
        let id: libp2p::PeerId = String::from_utf8_lossy(&made.stdout)
            .lines()
            .find_map(|l| l.strip_prefix("peer_id: ").map(str::to_owned))
            .ok_or_else(|| anyhow::anyhow!("no PeerId printed: {made:?}"))?
            .parse()?;
        keys.push((id, key));
    }
    keys.sort();
    let [(one, key_one), (two, key_two)]: [(libp2p::PeerId, std::path::PathBuf); 2] =
        keys.try_into().map_err(|_| anyhow::anyhow!("two keys"))?;
    Ok([(key_one, one.to_string()), (key_two, two.to_string())])
}

/// Waits for the node's record to carry an address for `transport` ("tcp" or "quic") and
/// returns it decoded (by `peerfind enr decode --json`).
pub async fn record_with(node: &mut Peerfind, transport: &str) -> anyhow::Result<Value> {
    let enr = node
        .until(&format!("a record with a {transport} address"), WAIT, |s| {
            s.record().has(&[transport]).then(|| s.status.enr.clone())
        })
        .await?;
    decode_enr(&enr).await
}

/// Stops every node, ignoring those already gone.
pub async fn stop_all(nodes: &mut [&mut Peerfind]) {
    for node in nodes {
        let _ = node.stop().await;
    }
}
