//! The container image on its own, built from the root Dockerfile: its commands through the
//! entrypoint, the user its node runs as, and the ports, volume and health check in its config.
//! Its containers in the NAT lab's hosts, run as a user runs them, are tested in
//! `lab_container_hosts.rs`.
//!
//! Needs root, podman and the base images the test command makes; the test builds the image
//! (once per process) and prints how long that took and the image's size.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::Value;

use peerfind_tests::container;

/// EIP-778's example record: 127.0.0.1, UDP 30303, seq 1.
const EIP778_EXAMPLE: &str = "enr:-IS4QHCYrYZbAKWCBRlAy5zzaDZXJBGkcnh4MHcBFZntXNFrdvJjX04jRzjzCBOonrkTfj499SZuOh8R33Ls8RRcy5wBgmlkgnY0gmlwhH8AAAGJc2VjcDI1NmsxoQPKY0yuDUmstAHYpMa2_oxVtw0RW_QAdpzBQA8yWM0xOIN1ZHCCdl8";
/// The image builds from the root Dockerfile (time and size printed); `--help` and
/// `enr decode` of EIP-778's example work through the entrypoint; the node runs as a user that
/// is not root; the ports, the volume and the health check (`peerfind probe`, on the metrics
/// port the image turns on) are in the image's config.
#[tokio::test]
async fn lab_container_image_builds_and_runs_the_cli_as_a_non_root_user() {
    let built = container::image().expect("the image builds from the root Dockerfile");
    let image = built.image.as_str();
    println!(
        "image {image}: {:.1} MB, built in {:.1} s (base images {:.1} s)",
        built.size_bytes as f64 / 1e6,
        built.build_seconds,
        built.base_seconds
    );

    let help = container::run(&["run", "--rm", "--network", "none", image, "--help"])
        .await
        .unwrap();
    for command in ["run", "bootnode", "enr", "status", "peers", "watch"] {
        assert!(
            help.lines()
                .any(|l| l.trim_start().starts_with(&format!("{command} "))),
            "--help lists {command}: {help}"
        );
    }
    let decoded = container::run(&[
        "run",
        "--rm",
        "--network",
        "none",
        image,
        "enr",
        "decode",
        "--json",
        EIP778_EXAMPLE,
    ])
    .await
    .unwrap();
    let decoded: Value = serde_json::from_str(&decoded).unwrap();
    assert_eq!(decoded["seq"], 1, "{decoded}");
    assert_eq!(decoded["ip"], "127.0.0.1", "{decoded}");
    assert_eq!(decoded["udp"], 30303, "{decoded}");
    assert_eq!(
        decoded["node_id"], "a448f24c6d18e575453db13171562b71999873db5b286df957af199ec94617f7",
        "{decoded}"
    );

    let user = container::run(&["image", "inspect", "--format", "{{.Config.User}}", image])
        .await
        .unwrap();
    let user = user.trim();
    assert!(
        !user.is_empty() && !user.starts_with("root") && !user.starts_with("0"),
        "the image runs as {user:?}"
    );
    let uid = container::run(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--entrypoint",
        "id",
        image,
        "-u",
    ])
    .await
    .unwrap();
    assert_ne!(uid.trim(), "0", "the node's process runs as root");
    let config = container::run(&[
        "image",
        "inspect",
        "--format",
        "{{json .Config.ExposedPorts}} {{json .Config.Volumes}} {{json .Config.Entrypoint}} {{json .Config.Healthcheck}}",
        image,
    ])
    .await
    .unwrap();
    for part in ["9000/tcp", "9000/udp", "9100/tcp", "/data", "peerfind"] {
        assert!(
            config.contains(part),
            "the image's config has {part}: {config}"
        );
    }
    // The health check is the node's own probe, run in the container: `peerfind probe`.
    let check = container::run(&[
        "image",
        "inspect",
        "--format",
        "{{json .Config.Healthcheck.Test}}",
        image,
    ])
    .await
    .unwrap();
    let check: Vec<String> = serde_json::from_str(check.trim()).unwrap();
    assert_eq!(
        check,
        ["CMD", "peerfind", "probe"],
        "the image's HEALTHCHECK"
    );
    // The probe it runs answers from the image's metrics address, on by default.
    let env = container::run(&[
        "image",
        "inspect",
        "--format",
        "{{json .Config.Env}}",
        image,
    ])
    .await
    .unwrap();
    assert!(
        env.contains("PEERFIND_METRICS=0.0.0.0:9100"),
        "the image serves its probes on 9100: {env}"
    );
}
