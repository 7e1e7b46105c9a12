//! The images the tests run: peerfind's, built from the root `Dockerfile` once per test
//! process (or named by [`IMAGE_ENV`]), and the NAT router stage.
//!
//! Separate from `mod.rs`, which runs containers of these images: building is a slow, one-off
//! step with its own timing report, and nothing here knows about containers or the lab.

use std::process::{Command as StdCommand, Stdio};
use std::sync::OnceLock;
use std::time::Instant;

use anyhow::{Context as _, bail};

use super::{repo_root, std_podman};

/// The runtime image, fully qualified: podman does not resolve a short name it did not pull.
pub const IMAGE: &str = "localhost/peerfind";

/// The NAT router image: the Dockerfile's `router` stage, which `compose.yaml` runs.
pub const ROUTER_IMAGE: &str = "localhost/peerfind-router";

/// Names an image already built (from this Dockerfile) to test instead of building one, for
/// quick runs while working on the tests.
pub const IMAGE_ENV: &str = "PEERFIND_TEST_IMAGE";

/// What building the image took and gave.
#[derive(Clone, Debug)]
pub struct Built {
    /// The image's name: [`IMAGE`], or the one [`IMAGE_ENV`] names.
    pub image: String,
    /// Seconds the base images took (0 when they were present already).
    pub base_seconds: f64,
    /// Seconds `podman build` of the root Dockerfile took.
    pub build_seconds: f64,
    /// The runtime image's size, in bytes, as podman reports it.
    pub size_bytes: u64,
}

/// Builds the image from the root Dockerfile, once per test process, and prints how long that
/// took and the image's size. Later calls return the first call's outcome. With
/// [`IMAGE_ENV`] set, tests that image instead and builds nothing.
pub fn image() -> anyhow::Result<Built> {
    static BUILT: OnceLock<Result<Built, String>> = OnceLock::new();
    BUILT
        .get_or_init(|| build().map_err(|e| format!("{e:#}")))
        .clone()
        .map_err(anyhow::Error::msg)
}

fn build() -> anyhow::Result<Built> {
    if let Ok(image) = std::env::var(IMAGE_ENV) {
        let size_bytes = image_size(&image)?;
        return Ok(Built {
            image,
            base_seconds: 0.0,
            build_seconds: 0.0,
            size_bytes,
        });
    }
    let root = repo_root();
    let started = Instant::now();
    let mut base = std_podman();
    base.arg("--version");
    run_std(&mut base).context("podman is not installed: run the test command as root")?;
    let mut base = StdCommand::new("bash");
    base.arg(root.join("container/base-images.sh"));
    if std::env::var_os("CONTAINERS_CONF").is_none() {
        base.env("CONTAINERS_CONF", root.join("container/containers.conf"));
    }
    let out = run_std(&mut base)?;
    eprint!("{out}");
    let base_seconds = started.elapsed().as_secs_f64();

    let started = Instant::now();
    let mut cmd = std_podman();
    // `--format docker` keeps the HEALTHCHECK (the OCI format has no such field); the build's
    // own steps use this machine's network, to reach the crate registry.
    cmd.args([
        "build",
        "--pull=never",
        "--format",
        "docker",
        "--network",
        "host",
    ])
    .args(["--tag", IMAGE]);
    // A registry behind a TLS-inspecting proxy is trusted through the bundle SSL_CERT_FILE
    // names: lend it to the build's steps, never copy it into the image.
    if let Some(bundle) = std::env::var_os("SSL_CERT_FILE") {
        let bundle = std::fs::canonicalize(&bundle)
            .with_context(|| format!("SSL_CERT_FILE={}", bundle.to_string_lossy()))?;
        cmd.arg("--volume").arg(format!(
            "{}:/etc/ssl/certs/ca-certificates.crt:ro",
            bundle.display()
        ));
    }
    cmd.arg(&root)
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit());
    let status = cmd.status().context("starting podman build")?;
    if !status.success() {
        bail!("podman build of the root Dockerfile failed ({status})");
    }
    let build_seconds = started.elapsed().as_secs_f64();
    let size_bytes = image_size(IMAGE)?;
    let built = Built {
        image: IMAGE.to_owned(),
        base_seconds,
        build_seconds,
        size_bytes,
    };
    eprintln!(
        "image {IMAGE}: base images {:.1} s, build {:.1} s, size {:.1} MB",
        built.base_seconds,
        built.build_seconds,
        built.size_bytes as f64 / 1e6
    );
    Ok(built)
}

/// Builds the router image ([`ROUTER_IMAGE`], the Dockerfile's `router` stage), once per test
/// process. It needs only the Debian base image and Debian's packages.
pub fn router_image() -> anyhow::Result<String> {
    static BUILT: OnceLock<Result<String, String>> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            // The base images come first; the main image's build makes them.
            image().map_err(|e| format!("{e:#}"))?;
            let mut cmd = std_podman();
            cmd.args([
                "build",
                "--pull=never",
                "--format",
                "docker",
                "--network",
                "host",
            ])
            .args(["--target", "router", "--tag", ROUTER_IMAGE])
            .arg(repo_root());
            run_std(&mut cmd)
                .map(|_| ROUTER_IMAGE.to_owned())
                .map_err(|e| format!("{e:#}"))
        })
        .clone()
        .map_err(anyhow::Error::msg)
}

/// The size podman reports for `image`, in bytes.
fn image_size(image: &str) -> anyhow::Result<u64> {
    let mut size = std_podman();
    size.args(["image", "inspect", "--format", "{{.Size}}", image]);
    run_std(&mut size)?
        .trim()
        .parse()
        .with_context(|| format!("the size of {image}"))
}

/// Runs `cmd` to its end and returns its stdout; fails with its stderr.
fn run_std(cmd: &mut StdCommand) -> anyhow::Result<String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("starting {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
