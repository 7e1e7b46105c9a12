//! peerfind's container image as a user runs it: built once per test process from the root
//! `Dockerfile` with podman, started in lab hosts (`podman run --network ns:…`), and asked
//! through `podman exec … peerfind status|peers --json`.
//!
//! There is no registry here: [`image`] first makes the base images the Dockerfile's `FROM`
//! lines name (`container/base-images.sh`, which keeps those already present), then builds
//! with `--pull=never`. Every container and volume a test makes has a unique name and is
//! removed when its value is dropped, also when the test panics; declare them after the
//! [`Lab`] they run in, so they go before its namespaces do.
//!
//! Needs root, podman, buildah and debootstrap (the test command installs them); the tests
//! that use this module have names starting with `lab_`.

use std::path::{Path, PathBuf};
use std::process::{Command as StdCommand, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde_json::Value;
use tokio::process::Command;

use crate::lab::{Host, Lab};

/// The runtime image, fully qualified: podman does not resolve a short name it did not pull.
pub const IMAGE: &str = "localhost/peerfind";

/// The NAT router image: the Dockerfile's `router` stage, which `compose.yaml` runs.
pub const ROUTER_IMAGE: &str = "localhost/peerfind-router";

/// Names an image already built (from this Dockerfile) to test instead of building one, for
/// quick runs while working on the tests.
pub const IMAGE_ENV: &str = "PEERFIND_TEST_IMAGE";

/// The label on every container and volume the tests make, to find leftovers of a killed run:
/// `podman rm -f $(podman ps -aq --filter label=peerfind.test)`.
pub const LABEL: &str = "peerfind.test";

/// Bound on one `podman exec` or `podman inspect`: each takes well under a second; this only
/// stops a wedged runtime from hanging the test.
const PODMAN_WAIT: Duration = Duration::from_secs(30);

/// Pause between two polls of a container's state: a `podman exec` costs a few hundred
/// milliseconds of CPU, so polling faster only loads the 2-core machine.
const POLL_EVERY: Duration = Duration::from_millis(500);

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

/// The repository's root: the build context and where the Dockerfile is.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// A podman command, configured by `container/containers.conf` unless `CONTAINERS_CONF`
/// names another file.
pub fn podman() -> Command {
    Command::from(std_podman())
}

fn std_podman() -> StdCommand {
    let mut cmd = StdCommand::new("podman");
    if std::env::var_os("CONTAINERS_CONF").is_none() {
        cmd.env(
            "CONTAINERS_CONF",
            repo_root().join("container/containers.conf"),
        );
    }
    cmd.stdin(Stdio::null());
    cmd
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

/// Runs a podman command with the usual bound and returns its output, whatever its status.
pub async fn output(args: &[&str]) -> anyhow::Result<std::process::Output> {
    let mut cmd = podman();
    cmd.args(args).kill_on_drop(true);
    tokio::time::timeout(PODMAN_WAIT, cmd.output())
        .await
        .with_context(|| format!("podman {args:?} did not end"))?
        .with_context(|| format!("starting podman {args:?}"))
}

/// Runs a podman command; its stdout, or an error with its stderr when it fails.
pub async fn run(args: &[&str]) -> anyhow::Result<String> {
    let out = output(args).await?;
    if !out.status.success() {
        bail!(
            "podman {args:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A name no other container or volume has: this process's id, a counter and `role`.
fn unique(role: &str) -> String {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("pf-test-{}-{n}-{role}", std::process::id())
}

/// A named volume, removed on drop.
pub struct Volume {
    name: String,
}

impl Volume {
    /// Makes a fresh volume for `role`.
    pub async fn new(role: &str) -> anyhow::Result<Self> {
        let name = unique(role);
        let label = format!("{LABEL}=1");
        run(&["volume", "create", "--label", &label, &name]).await?;
        Ok(Self { name })
    }

    /// Its name, for `--volume NAME:/data`.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for Volume {
    fn drop(&mut self) {
        let _ = std_podman()
            .args(["volume", "rm", "--force", &self.name])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// A container of the tested image ([`image`]), removed (with force, and with its anonymous
/// volumes) on drop; its log is printed then when the
/// test is failing, or always with `PEERFIND_TEST_SHOW_LOGS=1`.
pub struct Container {
    name: String,
    role: String,
}

impl Container {
    /// Starts `IMAGE ARGS` detached inside the lab's `host` (its network namespace), with
    /// the data volume `volume` on `/data` when given (else the image's anonymous one).
    pub async fn start(
        lab: &Lab,
        host: Host,
        volume: Option<&Volume>,
        args: &[String],
    ) -> anyhow::Result<Self> {
        let network = format!("ns:/run/netns/{}", lab.netns(host));
        Self::start_in(host.name(), &network, volume, args).await
    }

    /// Starts `IMAGE ARGS` detached with `--network NETWORK` (`none`, `host` or `ns:PATH`).
    pub async fn start_in(
        role: &str,
        network: &str,
        volume: Option<&Volume>,
        args: &[String],
    ) -> anyhow::Result<Self> {
        let log = format!(
            "RUST_LOG={}",
            std::env::var("PEERFIND_TEST_LOG").unwrap_or_else(|_| "info".into())
        );
        let mut options = vec!["--env".to_owned(), log];
        if let Some(volume) = volume {
            options.extend(["--volume".into(), format!("{}:/data", volume.name())]);
        }
        Self::launch(role, network, &image()?.image, &options, args).await
    }

    /// Starts `IMAGE ARGS` detached with `--network NETWORK` and the podman `options`.
    pub async fn launch(
        role: &str,
        network: &str,
        image: &str,
        options: &[String],
        args: &[String],
    ) -> anyhow::Result<Self> {
        let name = unique(role);
        let label = format!("{LABEL}=1");
        let mut cmd: Vec<String> = ["run", "--detach", "--name", &name, "--label", &label]
            .map(str::to_owned)
            .into();
        cmd.extend(["--network".into(), network.to_owned()]);
        cmd.extend(options.iter().cloned());
        cmd.push(image.to_owned());
        cmd.extend(args.iter().cloned());
        let refs: Vec<&str> = cmd.iter().map(String::as_str).collect();
        // Made before starting, so that a start that fails half-way is removed too.
        let container = Self {
            name,
            role: role.to_owned(),
        };
        run(&refs).await?;
        Ok(container)
    }

    /// The container's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs `peerfind ARGS --json` inside the container (as its user, against the node's API
    /// on the container's loopback) and parses what it prints.
    pub async fn json(&self, args: &[&str]) -> anyhow::Result<Value> {
        let mut cmd = vec!["exec", &self.name, "peerfind"];
        cmd.extend(args);
        cmd.push("--json");
        let out = run(&cmd)
            .await
            .with_context(|| format!("in {}", self.role))?;
        serde_json::from_str(&out).with_context(|| format!("{} printed {out}", self.role))
    }

    /// `peerfind status --json`.
    pub async fn status(&self) -> anyhow::Result<Value> {
        self.json(&["status"]).await
    }

    /// What `peerfind peers --peer-id PEER --json` says of `peer`, or `None` while the node
    /// does not know it.
    pub async fn peer(&self, peer: &str) -> anyhow::Result<Option<Value>> {
        let list = self.json(&["peers", "--peer-id", peer]).await;
        match list {
            Ok(Value::Array(mut one)) if one.len() == 1 => Ok(one.pop()),
            Ok(other) => bail!("{} lists {peer} as {other}", self.role),
            // An unknown peer is NOT_FOUND: the command says so and fails.
            Err(error) if format!("{error:#}").contains("not found") => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// The node's own record, decoded by `peerfind enr decode --json` in the container.
    pub async fn record(&self) -> anyhow::Result<Value> {
        let status = self.status().await?;
        let enr = status["enr"].as_str().context("status without a record")?;
        self.json(&["enr", "decode", enr]).await
    }

    /// Polls `check` every [`POLL_EVERY`] until it gives a value, for at most `within`; on
    /// timeout the error names `what` and the last state `check` saw.
    pub async fn wait_for<T, F, Fut>(
        &self,
        what: &str,
        within: Duration,
        mut check: F,
    ) -> anyhow::Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = anyhow::Result<Result<T, String>>>,
    {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let last = match check().await {
                Ok(Ok(value)) => return Ok(value),
                Ok(Err(state)) => state,
                Err(error) => format!("{error:#}"),
            };
            if tokio::time::Instant::now() >= deadline {
                bail!(
                    "{}: no {what} within {within:?}; last seen: {last}",
                    self.role
                );
            }
            tokio::time::sleep(POLL_EVERY).await;
        }
    }

    /// A field of `podman inspect` (a Go template such as `{{.State.ExitCode}}`).
    pub async fn inspect(&self, template: &str) -> anyhow::Result<String> {
        Ok(run(&["inspect", "--format", template, &self.name])
            .await?
            .trim()
            .to_owned())
    }

    /// The node's process id as this machine sees it.
    pub async fn pid(&self) -> anyhow::Result<i32> {
        self.inspect("{{.State.Pid}}")
            .await?
            .parse()
            .context("container pid")
    }

    /// Runs the image's HEALTHCHECK once (`podman healthcheck run`): true when the check
    /// passed, false when it failed; an error when it could not run.
    pub async fn healthy(&self) -> anyhow::Result<bool> {
        let out = output(&["healthcheck", "run", &self.name]).await?;
        match out.status.code() {
            Some(0) => Ok(true),
            Some(1) => Ok(false),
            _ => bail!(
                "podman healthcheck run {} failed ({}): {}",
                self.role,
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ),
        }
    }

    /// The health podman last recorded: `starting`, `healthy` or `unhealthy` (after the
    /// image's number of failed checks in a row).
    pub async fn health(&self) -> anyhow::Result<String> {
        self.inspect("{{.State.Healthcheck.Status}}").await
    }

    /// `podman stop --time GRACE`: SIGTERM, and SIGKILL when the node is still running after
    /// `grace`. Returns how long the stop took and the node's exit code.
    pub async fn stop(&self, grace: Duration) -> anyhow::Result<(Duration, i64)> {
        let started = Instant::now();
        let grace = grace.as_secs().to_string();
        run(&["stop", "--time", &grace, &self.name]).await?;
        let took = started.elapsed();
        let code = self
            .inspect("{{.State.ExitCode}}")
            .await?
            .parse()
            .context("exit code")?;
        Ok((took, code))
    }

    /// The container's log (the node's stderr and stdout).
    pub fn log(&self) -> String {
        std_podman()
            .args(["logs", &self.name])
            .output()
            .map(|out| {
                format!(
                    "{}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                )
            })
            .unwrap_or_else(|e| format!("(no log: {e})"))
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        if std::thread::panicking() || std::env::var_os("PEERFIND_TEST_SHOW_LOGS").is_some() {
            eprintln!(
                "----- log of container {} -----\n{}----- end of {} -----",
                self.role,
                self.log(),
                self.role
            );
        }
        let _ = std_podman()
            .args(["rm", "--force", "--volumes", "--time", "0", &self.name])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}
