//! The root `compose.yaml` run as a user runs it, with the pinned `podman-compose` the test
//! command installs in a virtualenv (`tests/compose/requirements.txt`).
//!
//! A [`Project`] has its own project name, so it never touches a user's own `peerfind`
//! project; it brings down what an earlier, killed run of that name left before it starts,
//! and brings itself down (`down -v`) when dropped, also when the test panics. Only one project
//! of a name may run at a time: the networks' addresses are fixed.

use std::path::PathBuf;
use std::process::{Command as StdCommand, Stdio};
use std::time::Duration;

use anyhow::{Context as _, bail};
use tokio::process::Command;

use super::{Container, repo_root, run};

/// Bound on one `podman-compose` command: `up` starts eight containers and `down` stops them
/// (each node within its 2 s grace), which takes tens of seconds on a loaded 2-core machine;
/// this only stops a wedged engine from hanging the test.
const COMPOSE_WAIT: Duration = Duration::from_secs(300);

/// Seconds `down` lets each container stop before SIGKILL: a node ends within 2 s of SIGTERM.
const STOP_SECONDS: &str = "5";

/// The label podman-compose puts on every container, network and volume of a project.
const PROJECT_LABEL: &str = "io.podman.compose.project";

/// The pinned `podman-compose`, in the virtualenv the test command makes.
pub fn podman_compose() -> anyhow::Result<PathBuf> {
    let path = repo_root().join("tests/compose/.venv/bin/podman-compose");
    if !path.exists() {
        bail!(
            "{} is missing: run the test command (scripts/test.sh), which installs \
             tests/compose/requirements.txt in that virtualenv",
            path.display()
        );
    }
    Ok(path)
}

/// A compose project of the root `compose.yaml`, brought down (`down -v`) when dropped.
pub struct Project {
    name: String,
    /// The environment every command gets: the images to run, the NAT modes.
    env: Vec<(String, String)>,
}

impl Project {
    /// A project named `name` that runs `image` and `router_image`; brings down whatever an
    /// earlier run of that name left, and fails when something of it remains.
    pub async fn new(name: &str, image: &str, router_image: &str) -> anyhow::Result<Self> {
        let project = Self {
            name: name.to_owned(),
            env: vec![
                ("PEERFIND_IMAGE".into(), image.into()),
                ("PEERFIND_ROUTER_IMAGE".into(), router_image.into()),
            ],
        };
        project
            .down()
            .await
            .context("bringing down a stale project")?;
        Ok(project)
    }

    /// The project's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn command(&self, args: &[&str], env: &[(&str, &str)]) -> anyhow::Result<StdCommand> {
        let mut cmd = StdCommand::new(podman_compose()?);
        if std::env::var_os("CONTAINERS_CONF").is_none() {
            cmd.env(
                "CONTAINERS_CONF",
                repo_root().join("container/containers.conf"),
            );
        }
        cmd.current_dir(repo_root())
            .args(["--project-name", &self.name, "--file", "compose.yaml"])
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .envs(env.iter().copied())
            .stdin(Stdio::null());
        Ok(cmd)
    }

    /// Runs `podman-compose ARGS` with `env` added; its stdout, or an error with its output.
    pub async fn compose(&self, args: &[&str], env: &[(&str, &str)]) -> anyhow::Result<String> {
        let mut cmd = Command::from(self.command(args, env)?);
        cmd.kill_on_drop(true);
        let out = tokio::time::timeout(COMPOSE_WAIT, cmd.output())
            .await
            .with_context(|| format!("podman-compose {args:?} did not end"))?
            .with_context(|| format!("starting podman-compose {args:?}"))?;
        if !out.status.success() {
            bail!(
                "podman-compose {args:?} failed ({}): {}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// `up -d --no-build` with `env` (e.g. `BOB_NAT=symmetric`): the images are built already.
    pub async fn up(&self, env: &[(&str, &str)]) -> anyhow::Result<()> {
        self.up_only(env, &[]).await
    }

    /// [`Project::up`] of `services` only, and what they depend on (all when empty).
    pub async fn up_only(&self, env: &[(&str, &str)], services: &[&str]) -> anyhow::Result<()> {
        let mut args = vec!["up", "--detach", "--no-build"];
        args.extend_from_slice(services);
        self.compose(&args, env).await.map(drop)
    }

    /// `down -v`, then checks that no container, network or volume of the project is left.
    pub async fn down(&self) -> anyhow::Result<()> {
        self.compose(&["down", "--volumes", "--timeout", STOP_SECONDS], &[])
            .await?;
        let left = self.leftovers().await?;
        if !left.is_empty() {
            bail!("left by down -v: {}", left.join(", "));
        }
        Ok(())
    }

    /// Every container, network and volume of the project: labelled with it, or named after
    /// it (`NAME_…`).
    pub async fn leftovers(&self) -> anyhow::Result<Vec<String>> {
        let label = format!("label={PROJECT_LABEL}={}", self.name);
        let prefix = format!("{}_", self.name);
        let mut left = Vec::new();
        for (kind, list) in [
            ("container", ["ps", "--all", "--format", "{{.Names}}"]),
            ("network", ["network", "ls", "--format", "{{.Name}}"]),
            ("volume", ["volume", "ls", "--format", "{{.Name}}"]),
        ] {
            let mut named: Vec<String> = run(&list)
                .await?
                .lines()
                .filter(|n| n.starts_with(&prefix))
                .map(str::to_owned)
                .collect();
            let mut labelled = list.to_vec();
            labelled.extend(["--filter", &label]);
            named.extend(run(&labelled).await?.lines().map(str::to_owned));
            named.sort();
            named.dedup();
            left.extend(named.into_iter().map(|n| format!("{kind} {n}")));
        }
        Ok(left)
    }

    /// The running container of `service`, to ask through `podman exec`.
    pub async fn service(&self, service: &str) -> anyhow::Result<Container> {
        let project = format!("label={PROJECT_LABEL}={}", self.name);
        let of = format!("label=io.podman.compose.service={service}");
        let names = run(&[
            "ps",
            "--filter",
            &project,
            "--filter",
            &of,
            "--format",
            "{{.Names}}",
        ])
        .await?;
        match names.lines().collect::<Vec<_>>().as_slice() {
            [name] => Ok(Container::attach(name, service)),
            other => bail!("{} runs {other:?} for {service}", self.name),
        }
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        let Ok(mut cmd) = self.command(&["down", "--volumes", "--timeout", STOP_SECONDS], &[])
        else {
            return;
        };
        let _ = cmd.stdout(Stdio::null()).stderr(Stdio::null()).status();
    }
}
