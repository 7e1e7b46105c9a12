//! The container image run as a user runs it, in the NAT lab's hosts: the design note's
//! topology with every node a container (the routers load `container/router.nft`, the rules
//! the compose routers run), a restart on the same volume, a stop, the health check, and the
//! router image rebuilding the lab's rule set. Every assertion on a node reads its own API,
//! through `peerfind status|peers --json` run inside its container. The image on its own (its
//! commands, user and config) is tested in `lab_container.rs`.
//!
//! Needs root, podman and the base images the test command makes; the first test to run builds
//! the image once for all.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use serde_json::Value;

use peerfind_tests::container::{self, Container, Volume};
use peerfind_tests::lab::{Host, Lab, NatMode, Placement, Topology};
use peerfind_tests::scenario::{WAIT, listen};

/// A hole punch needs both NAT verdicts (AutoNAT, about 10 s each), a relay reservation, a
/// circuit and DCUtR's attempts, and each container adds start-up work: more than [`WAIT`].
const PUNCH_WAIT: Duration = Duration::from_secs(120);

/// SIGTERM must end the node within this; `podman stop` sends SIGKILL after it.
const STOP_GRACE: Duration = Duration::from_secs(2);

/// Bound on the wait for "unhealthy": the image's 3 failed checks in a row (and one more that
/// may fall in its start period), each ending when `peerfind probe` gives up (5 s for the
/// answer) plus podman's own work, which takes seconds more on a loaded machine.
const UNHEALTHY_WAIT: Duration = Duration::from_secs(180);

/// The exit code a container has when SIGKILL ended it (128 + 9).
const KILLED: i64 = 137;

const EIM: Placement = Placement::BehindNat(NatMode::EndpointIndependent);

fn strings(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

/// Builds the image (once per process) or fails the test.
fn image() {
    container::image().expect("the image builds from the root Dockerfile");
}

/// A bootnode container in the lab's bootnode host, listening on `transports`; returns it and
/// its record once the record carries its public address.
async fn bootnode(lab: &Lab, transports: &[&str]) -> (Container, String) {
    let mut args = strings(&["bootnode"]);
    for t in transports {
        args.extend(listen(t));
    }
    let boot = Container::start(lab, Host::Bootnode, None, &args)
        .await
        .unwrap();
    let public = lab.ip(Host::Bootnode).to_string();
    let record = boot
        .wait_for("record with its address", WAIT, || async {
            let record = boot.record().await?;
            Ok(if record["ip"] == public.as_str() {
                Ok(record)
            } else {
                Err(record.to_string())
            })
        })
        .await
        .unwrap();
    (boot, record["enr"].as_str().unwrap().to_owned())
}

/// A peer container (`peerfind run --bootnode ENR ARGS`) in `host`.
async fn peer(
    lab: &Lab,
    host: Host,
    volume: Option<&Volume>,
    enr: &str,
    args: &[String],
) -> Container {
    let mut all = strings(&["run", "--bootnode", enr]);
    all.extend(args.iter().cloned());
    Container::start(lab, host, volume, &all).await.unwrap()
}

/// The node's PeerId, from its status.
async fn peer_id(node: &Container) -> String {
    node.wait_for("status", WAIT, || async {
        let status = node.status().await?;
        Ok(status["peer_id"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| status.to_string()))
    })
    .await
    .unwrap()
}

/// Waits until `node` lists `other` with `connection` ("direct" or "relayed"), and over
/// `transport` when given; returns the entry.
async fn connected(
    node: &Container,
    other: &str,
    connection: &str,
    transport: Option<&str>,
    within: Duration,
) -> Value {
    node.wait_for(
        &format!("{connection} connection to {other}"),
        within,
        || async {
            let entry = node.peer(other).await?;
            Ok(match entry {
                Some(e)
                    if e["connection"] == connection
                        && transport.is_none_or(|t| e["transport"] == t) =>
                {
                    Ok(e)
                }
                other => Err(format!("{other:?}")),
            })
        },
    )
    .await
    .unwrap()
}

/// Waits for `alice`'s record to gain her router's public address, then the `nat` flag;
/// returns the flagged record.
async fn alice_learns_her_address_then_flags_herself(
    lab: &Lab,
    alice: &Container,
    transport: &str,
) -> Value {
    let mapped = lab.public_ip(Host::Alice).to_string();
    let addressed = alice
        .wait_for("record with nat-a's address", WAIT, || async {
            let record = alice.record().await?;
            Ok(
                if record["ip"] == mapped.as_str() && record[transport].is_u64() {
                    Ok(record)
                } else {
                    Err(record.to_string())
                },
            )
        })
        .await
        .unwrap();
    let flagged = alice
        .wait_for("record with the nat flag", WAIT, || async {
            let record = alice.record().await?;
            Ok(if record["nat"] == true {
                Ok(record)
            } else {
                Err(record.to_string())
            })
        })
        .await
        .unwrap();
    assert_eq!(
        flagged["ip"],
        mapped.as_str(),
        "still nat-a's address: {flagged}"
    );
    if addressed["nat"] == false {
        // Seen in between: the address came first, the flag with a later record.
        assert!(
            flagged["seq"].as_u64() > addressed["seq"].as_u64(),
            "{addressed} then {flagged}"
        );
    }
    let status = alice.status().await.unwrap();
    assert_eq!(status["nat"]["status"], "private", "{status}");
    flagged
}

/// The design note's topology, every node a container: Alice gains her router's public
/// address and then the `nat` flag, Charlie (public) ends with a direct connection to her
/// (through an introduction), and Alice and Bob, both behind endpoint-independent NATs, end
/// with a hole-punched direct connection over `transport`.
async fn the_topology_punches_a_hole(transport: &str) {
    image();
    let started = Instant::now();
    let lab = Lab::up(Topology::new(EIM, EIM)).expect("lab");
    let (boot, enr) = bootnode(&lab, &[transport]).await;
    let charlie = peer(&lab, Host::Charlie, None, &enr, &listen(transport)).await;
    let alice = peer(&lab, Host::Alice, None, &enr, &listen(transport)).await;
    let alice_id = peer_id(&alice).await;
    alice_learns_her_address_then_flags_herself(&lab, &alice, transport).await;

    let at_charlie = connected(&charlie, &alice_id, "direct", Some(transport), WAIT).await;
    assert_eq!(at_charlie["nat"], true, "{at_charlie}");

    // Bob starts once Alice is flagged: he meets only a NAT'd Alice, so nothing but the
    // relay and the punch can connect them.
    let bob = peer(&lab, Host::Bob, None, &enr, &listen(transport)).await;
    let bob_id = peer_id(&bob).await;
    connected(&bob, &alice_id, "direct", Some(transport), PUNCH_WAIT).await;
    connected(&alice, &bob_id, "direct", Some(transport), WAIT).await;
    let mut punched = 0;
    for node in [&alice, &bob] {
        let status = node.status().await.unwrap();
        assert_eq!(status["nat"]["status"], "private", "{status}");
        punched += status["counts"]["hole_punches_succeeded"].as_u64().unwrap();
    }
    assert!(punched >= 1, "a hole punch connected them");
    println!(
        "containers over {transport}: punched in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    drop((bob, alice, charlie, boot));
}

#[tokio::test]
async fn lab_container_topology_alice_and_bob_punch_a_hole_over_tcp() {
    the_topology_punches_a_hole("tcp").await;
}

#[tokio::test]
async fn lab_container_topology_alice_and_bob_punch_a_hole_over_quic() {
    the_topology_punches_a_hole("quic").await;
}

/// How many hole punches the node saw fail.
async fn punches_failed(node: &Container) -> anyhow::Result<u64> {
    let status = node.status().await?;
    Ok(status["counts"]["hole_punches_failed"]
        .as_u64()
        .unwrap_or_default())
}

/// Bob's router symmetric: no punch can work, and Alice and Bob stay connected through the
/// bootnode's relay.
#[tokio::test]
async fn lab_container_topology_with_bob_symmetric_stays_relayed() {
    image();
    let started = Instant::now();
    let lab = Lab::up(Topology::new(EIM, Placement::BehindNat(NatMode::Symmetric))).expect("lab");
    let (boot, enr) = bootnode(&lab, &["tcp", "quic"]).await;
    let alice = peer(&lab, Host::Alice, None, &enr, &listen("tcp")).await;
    let alice_id = peer_id(&alice).await;
    alice_learns_her_address_then_flags_herself(&lab, &alice, "tcp").await;
    let bob = peer(&lab, Host::Bob, None, &enr, &listen("tcp")).await;
    let bob_id = peer_id(&bob).await;

    connected(&bob, &alice_id, "relayed", None, PUNCH_WAIT).await;
    connected(&alice, &bob_id, "relayed", None, WAIT).await;
    // Wait for the punch to be tried and fail; the relayed connection must outlive it.
    bob.wait_for("failed hole punch", PUNCH_WAIT, || async {
        let n = punches_failed(&alice).await? + punches_failed(&bob).await?;
        Ok(if n >= 1 {
            Ok(n)
        } else {
            Err("none yet".into())
        })
    })
    .await
    .unwrap();
    for (node, other) in [(&alice, &bob_id), (&bob, &alice_id)] {
        let entry = node.peer(other).await.unwrap().expect("still known");
        assert_eq!(entry["connection"], "relayed", "{entry}");
        let status = node.status().await.unwrap();
        assert!(
            status["counts"]["relayed_connections"].as_u64() >= Some(1),
            "{status}"
        );
        assert_eq!(status["counts"]["hole_punches_succeeded"], 0, "{status}");
    }
    println!(
        "containers with a symmetric NAT: relayed in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    drop((bob, alice, boot));
}

/// A node in a container: healthy while it runs, unhealthy while its probe does not answer
/// (the process frozen), stopped by SIGTERM within the grace with exit code 0, and restarted
/// in a new container on the same volume with the same PeerId and a higher seq.
#[tokio::test]
async fn lab_container_restart_keeps_identity_stop_is_clean_and_health_is_checked() {
    image();
    let started = Instant::now();
    let lab = Lab::up(Topology::new(Placement::Public, Placement::Public)).expect("lab");
    let (boot, enr) = bootnode(&lab, &["tcp", "quic"]).await;
    let data = Volume::new("charlie-data").await.unwrap();
    let charlie = peer(&lab, Host::Charlie, Some(&data), &enr, &[]).await;
    let public = lab.ip(Host::Charlie).to_string();
    let first = charlie
        .wait_for("record with its address", WAIT, || async {
            let record = charlie.record().await?;
            Ok(if record["ip"] == public.as_str() {
                Ok(record)
            } else {
                Err(record.to_string())
            })
        })
        .await
        .unwrap();

    charlie
        .wait_for("healthy", WAIT, || async {
            Ok(if charlie.healthy().await? {
                Ok(())
            } else {
                Err("unhealthy".into())
            })
        })
        .await
        .unwrap();
    assert_eq!(charlie.health().await.unwrap(), "healthy");

    let (took, code) = charlie.stop(STOP_GRACE).await.unwrap();
    println!(
        "podman stop took {:.2} s, exit code {code}",
        took.as_secs_f64()
    );
    assert_ne!(
        code, KILLED,
        "SIGTERM did not end the node within {STOP_GRACE:?}"
    );
    assert_eq!(code, 0, "the node's exit code after SIGTERM");
    drop(charlie);

    let again = peer(&lab, Host::Charlie, Some(&data), &enr, &[]).await;
    let restarted = again.record().await;
    let restarted = match restarted {
        Ok(record) => record,
        Err(_) => again
            .wait_for("record", WAIT, || async { Ok(Ok(again.record().await?)) })
            .await
            .unwrap(),
    };
    assert_eq!(restarted["peer_id"], first["peer_id"], "same identity");
    assert!(
        restarted["seq"].as_u64() > first["seq"].as_u64(),
        "seq grows: {first} then {restarted}"
    );

    // Frozen, the node's API cannot answer: the check fails, and after the image's number of
    // failures in a row podman records the container as unhealthy.
    let pid = nix::unistd::Pid::from_raw(again.pid().await.unwrap());
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGSTOP).unwrap();
    let unhealthy = again
        .wait_for("unhealthy", UNHEALTHY_WAIT, || async {
            if again.healthy().await? {
                return Ok(Err("the check passed".into()));
            }
            let health = again.health().await?;
            Ok(if health == "unhealthy" {
                Ok(())
            } else {
                Err(health)
            })
        })
        .await;
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGCONT).unwrap();
    unhealthy.unwrap();
    // Thawed, it answers again.
    again
        .wait_for("healthy again", WAIT, || async {
            Ok(if again.healthy().await? {
                Ok(())
            } else {
                Err("unhealthy".into())
            })
        })
        .await
        .unwrap();
    println!(
        "container lifecycle in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    drop((again, boot));
}

/// `nft list ruleset` inside `host`.
fn ruleset(lab: &Lab, host: Host) -> String {
    let out = lab
        .command(host, "nft")
        .args(["list", "ruleset"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap()
}

/// The router image compose.yaml runs loads exactly the rules the lab's routers run (both read
/// `container/router.nft`): in each router host of a lab, after emptying it, the router
/// container rebuilds the same rule set, endpoint-independent and symmetric.
#[tokio::test]
async fn lab_container_router_image_loads_the_labs_rules() {
    let router = container::router_image().expect("the router stage builds");
    let lab = Lab::up(Topology::new(EIM, Placement::BehindNat(NatMode::Symmetric))).expect("lab");
    let mut routers = Vec::new();
    for (host, lan_host, mode) in [
        (Host::NatA, Host::Alice, "eim"),
        (Host::NatB, Host::Bob, "symmetric"),
    ] {
        let expected = ruleset(&lab, host);
        assert!(expected.contains("masquerade"), "{expected}");
        let flush = lab
            .command(host, "nft")
            .args(["flush", "ruleset"])
            .status()
            .unwrap();
        assert!(flush.success());
        assert!(!ruleset(&lab, host).contains("masquerade"));
        let network = format!("ns:/run/netns/{}", lab.netns(host));
        let options = strings(&[
            "--cap-add",
            "NET_ADMIN",
            "--env",
            &format!("NAT_MODE={mode}"),
            "--env",
            &format!("LAN_HOST={}", lab.ip(lan_host)),
        ]);
        let container = Container::launch(host.name(), &network, &router, &options, &[])
            .await
            .unwrap();
        container
            .wait_for("the lab's rules", WAIT, || async {
                let now = ruleset(&lab, host);
                Ok(if now == expected { Ok(()) } else { Err(now) })
            })
            .await
            .unwrap();
        routers.push(container);
    }
    drop(routers);
}
