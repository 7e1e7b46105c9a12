//! The config file (`--config`), with the real binary: layered under the environment and
//! flags as documented, shown by `peerfind config`, used by a node at start, and a bad key
//! one line naming it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use peerfind_tests::local::{LISTEN, WAIT};
use peerfind_tests::process::Peerfind;

fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> String {
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_owned()
}

/// The line of `peerfind config` output for `key`.
fn line<'a>(out: &'a str, key: &str) -> &'a str {
    out.lines()
        .find(|l| l.starts_with(&format!("{key} =")))
        .unwrap_or_else(|| panic!("no {key} in\n{out}"))
}

#[tokio::test]
async fn flags_override_the_environment_which_overrides_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        &dir,
        "peerfind.toml",
        "max_peers = 7\ngossip_fanout = 3\ntable_size = 100\nautonat = false\n",
    );
    let mut cmd = Peerfind::command(["config", "run", "--config", &file, "--table-size", "200"]);
    cmd.env("PEERFIND_GOSSIP_FANOUT", "5");
    let out = cmd.output().await.unwrap();
    assert!(out.status.success(), "{out:?}");
    let out = String::from_utf8(out.stdout).unwrap();
    assert_eq!(line(&out, "max_peers"), "max_peers = 7  # file");
    assert_eq!(
        line(&out, "gossip_fanout"),
        "gossip_fanout = 5  # environment"
    );
    assert_eq!(line(&out, "table_size"), "table_size = 200  # flag");
    assert_eq!(line(&out, "autonat"), "autonat = false  # file");
    assert_eq!(line(&out, "port"), "port = 9000  # default");
}

#[tokio::test]
async fn a_node_starts_with_what_its_file_says() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(&dir, "peerfind.toml", "metrics = \"127.0.0.1:0\"\n");
    let args = ["bootnode", "--config", &file].into_iter().chain(LISTEN);
    let mut node = Peerfind::start("bootnode", Peerfind::command(args)).unwrap();
    node.wait_for("metrics listening", WAIT, |_| true)
        .await
        .unwrap();
    node.stop().await.unwrap();
}

#[tokio::test]
async fn an_unknown_key_stops_the_start_with_one_line_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(&dir, "peerfind.toml", "max_peers = 7\nmax_peer = 3\n");
    let mut cmd = Peerfind::command(["run", "--config", &file]);
    cmd.env("RUST_BACKTRACE", "0");
    let out = cmd.output().await.unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("unknown key `max_peer`"), "{err}");
}
