//! Tests of the NAT lab itself as a thing made, used and removed: it runs commands inside its
//! hosts, leaves no namespace or process behind (dropped, after a panic, or removed by its
//! prefix), and refuses clearly without root. Apart from `lab_self.rs`, which tests the lab's
//! network (how its routers map and filter, what its impaired links do). They need root;
//! `cargo test -- --skip lab_` runs everything else.

#![allow(clippy::unwrap_used)]

use std::process::Command;

use peerfind_tests::lab::{self, Host, Lab, NatMode, Placement, Topology};

fn up(alice: Placement, bob: Placement) -> Lab {
    Lab::up(Topology::new(alice, bob)).expect("the lab comes up")
}

fn behind(mode: NatMode) -> Placement {
    Placement::BehindNat(mode)
}

#[test]
fn lab_runs_commands_inside_its_hosts() {
    let lab = up(
        behind(NatMode::EndpointIndependent),
        behind(NatMode::Symmetric),
    );
    let output = lab
        .command(Host::Bob, "ip")
        .args(["-4", "-o", "addr", "show", "eth0"])
        .output()
        .unwrap();
    assert!(output.status.success());
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(text.contains("192.168.2.2/24"), "{text}");
}

#[tokio::test]
async fn lab_runs_async_commands_inside_its_hosts() {
    let lab = Lab::up(Topology::default()).expect("the lab comes up");
    let output = lab
        .tokio_command(Host::NatA, "ip")
        .args(["-4", "-o", "route"])
        .output()
        .await
        .unwrap();
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(text.contains("192.168.1.0/24 dev lan0"), "{text}");
    assert!(text.contains("198.51.100.0/24 dev wan0"), "{text}");
}

/// Namespace names present on this machine.
fn present() -> Vec<String> {
    let output = Command::new("ip").args(["netns", "list"]).output().unwrap();
    assert!(output.status.success());
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

fn namespaces_of(lab: &Lab) -> Vec<String> {
    let names: Vec<String> = lab::list().unwrap().remove(lab.prefix()).unwrap();
    assert_eq!(
        names.len(),
        7,
        "the public segment and six hosts: {names:?}"
    );
    names
}

#[test]
fn lab_removes_its_namespaces_and_kills_their_processes_when_dropped() {
    let lab = up(
        behind(NatMode::EndpointIndependent),
        behind(NatMode::FullCone),
    );
    let names = namespaces_of(&lab);
    assert!(names.iter().all(|name| present().contains(name)));
    let mut sleeper = lab
        .command(Host::Charlie, "sleep")
        .arg("600")
        .spawn()
        .unwrap();

    drop(lab);

    let left: Vec<_> = present()
        .into_iter()
        .filter(|name| names.contains(name))
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
    let status = sleeper.wait().unwrap();
    assert!(!status.success(), "the sleeper was not killed: {status}");
}

#[test]
fn lab_removes_its_namespaces_after_a_panic_in_the_test() {
    let mut names = Vec::new();
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let lab = up(Placement::Public, Placement::Public);
        names = namespaces_of_public(&lab);
        panic!("a failing test");
    }));
    assert!(outcome.is_err());
    assert!(!names.is_empty());
    let left: Vec<_> = present()
        .into_iter()
        .filter(|name| names.contains(name))
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

fn namespaces_of_public(lab: &Lab) -> Vec<String> {
    let names: Vec<String> = lab::list().unwrap().remove(lab.prefix()).unwrap();
    assert_eq!(
        names.len(),
        5,
        "the public segment and four hosts: {names:?}"
    );
    names
}

#[test]
fn lab_removes_a_lab_made_by_hand_by_its_prefix() {
    let lab = up(Placement::Public, behind(NatMode::Symmetric));
    let names = lab::list().unwrap().remove(lab.prefix()).unwrap();
    let prefix = lab.keep();
    assert!(names.iter().all(|name| present().contains(name)));
    assert_eq!(lab::remove(&prefix).unwrap(), names);
    assert!(!lab::list().unwrap().contains_key(&prefix));
}

#[test]
fn lab_refuses_clearly_without_root() {
    // The command line tool, run as nobody: the message must say what the lab needs.
    let output = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(env!("CARGO_BIN_EXE_peerfind-lab"))
        .arg("up")
        .output()
        .expect("setpriv (util-linux) runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("needs root"), "{stderr}");
    assert!(stderr.contains("--skip lab_"), "{stderr}");
}
