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

pub mod compose;
mod images;

pub use images::{Built, IMAGE, IMAGE_ENV, ROUTER_IMAGE, image, router_image};

use std::path::{Path, PathBuf};
use std::process::{Command as StdCommand, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde_json::Value;
use tokio::process::Command;

use crate::lab::{Host, Lab};

/// The label on every container and volume the tests make, to find leftovers of a killed run:
/// `podman rm -f $(podman ps -aq --filter label=peerfind.test)`.
pub const LABEL: &str = "peerfind.test";

/// Bound on one `podman exec` or `podman inspect`: each takes well under a second; this only
/// stops a wedged runtime from hanging the test.
const PODMAN_WAIT: Duration = Duration::from_secs(30);

/// Pause between two polls of a container's state: a `podman exec` costs a few hundred
/// milliseconds of CPU, so polling faster only loads the 2-core machine.
const POLL_EVERY: Duration = Duration::from_millis(500);

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
/// volumes) on drop unless another owns it ([`Container::attach`]); its log is printed then
/// when the test is failing, or always with `PEERFIND_TEST_SHOW_LOGS=1`.
pub struct Container {
    name: String,
    role: String,
    /// Whether dropping it removes it: not for a compose service, which its project removes.
    owned: bool,
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
            owned: true,
        };
        run(&refs).await?;
        Ok(container)
    }

    /// The running container `name`, which something else made and removes (a compose
    /// project): asked as any other, its log printed on drop when the test fails.
    pub fn attach(name: &str, role: &str) -> Self {
        Self {
            name: name.to_owned(),
            role: role.to_owned(),
            owned: false,
        }
    }

    /// Runs `peerfind probe` (`--ready` when `ready`) inside the container: the node's answer
    /// when the probe passed, its reason when not.
    pub async fn probe(&self, ready: bool) -> anyhow::Result<Result<String, String>> {
        let mut cmd = vec!["exec", &self.name, "peerfind", "probe"];
        if ready {
            cmd.push("--ready");
        }
        let out = output(&cmd).await?;
        let said = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        Ok(match out.status.code() {
            Some(0) => Ok(said),
            Some(1) => Err(said),
            _ => bail!(
                "{}: peerfind probe failed ({}): {}",
                self.role,
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ),
        })
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
        if !self.owned {
            return;
        }
        let _ = std_podman()
            .args(["rm", "--force", "--volumes", "--time", "0", &self.name])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}
