//! Named network namespaces: making, entering, emptying and deleting them.
//!
//! Namespaces are made and deleted with `ip netns`, so they are the ordinary named kind that
//! `ip netns list` shows and `ip netns exec` enters. Everything else the lab does inside a
//! namespace goes through `ip -n NAME` or a thread that joined the namespace with `setns`.

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io::{self, Write as _};
use std::os::unix::fs::MetadataExt as _;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sched::{CloneFlags, setns};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::LabError;

/// Where iproute2 keeps the bind mounts that give namespaces their names.
const NETNS_DIR: &str = "/run/netns";

/// How many times teardown looks again for processes in a namespace after killing some: a
/// process may fork while it is being killed. Each look is a scan of `/proc`.
const KILL_ROUNDS: usize = 20;

/// The pause between two kill rounds: enough for a killed process to exit.
const KILL_PAUSE: Duration = Duration::from_millis(5);

/// How long links may take to come up. The kernel's link watch runs at least once a second;
/// more means something is wrong.
const LINKS_UP_TIMEOUT: Duration = Duration::from_secs(5);

/// The pause between two looks at a namespace's links.
const LINKS_UP_PAUSE: Duration = Duration::from_millis(2);

/// The file that names namespace `name`.
pub(super) fn path(name: &str) -> PathBuf {
    PathBuf::from(NETNS_DIR).join(name)
}

/// Every named namespace present, sorted.
pub(super) fn names() -> Result<BTreeSet<String>, LabError> {
    let entries = match fs::read_dir(NETNS_DIR) {
        Ok(entries) => entries,
        // No namespace was ever named on this machine.
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(BTreeSet::new()),
        Err(source) => return Err(LabError::io(format!("reading {NETNS_DIR}"), source)),
    };
    let mut names = BTreeSet::new();
    for entry in entries {
        let entry = entry.map_err(|source| LabError::io(format!("reading {NETNS_DIR}"), source))?;
        if let Some(name) = entry.file_name().to_str() {
            names.insert(name.to_owned());
        }
    }
    Ok(names)
}

/// Makes the named namespaces with one `ip -batch`.
pub(super) fn create(names: &[String]) -> Result<(), LabError> {
    let script: String = names
        .iter()
        .map(|name| format!("netns add {name}\n"))
        .collect();
    run(ip(None), &script)
}

/// Kills every process whose network namespace is one of `names`, then deletes the names.
///
/// A namespace lives on while a process or an open socket holds it; its name is gone at once.
/// Sockets this process holds (made by [`super::Lab::in_host`]) keep theirs until closed.
pub(super) fn remove(names: &[String]) -> Result<(), LabError> {
    let present: Vec<&String> = names.iter().filter(|name| path(name).exists()).collect();
    if present.is_empty() {
        return Ok(());
    }
    kill_processes(&present)?;
    let script: String = present
        .iter()
        .map(|name| format!("netns del {name}\n"))
        .collect();
    let mut command = ip(None);
    // Go on past a line that fails, so one stuck namespace does not keep the others.
    command.arg("-force");
    run(command, &script)
}

/// SIGKILLs every other process whose network namespace is one of `names`, as
/// `ip netns pids` finds them: by comparing `/proc/PID/ns/net` with the namespace's file.
fn kill_processes(names: &[&String]) -> Result<(), LabError> {
    let mut targets = Vec::new();
    for name in names {
        match fs::metadata(path(name)) {
            Ok(meta) => targets.push((meta.dev(), meta.ino())),
            Err(error) if error.kind() == io::ErrorKind::NotFound => {}
            Err(source) => return Err(LabError::io(format!("reading namespace {name}"), source)),
        }
    }
    let own = std::process::id();
    for _ in 0..KILL_ROUNDS {
        let proc = fs::read_dir("/proc").map_err(|source| LabError::io("reading /proc", source))?;
        let mut killed = false;
        let mut unsure = false;
        for entry in proc.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<u32>().ok())
            else {
                continue;
            };
            if pid == own {
                continue;
            }
            // The link vanishes when the process exits, or is a zombie: nothing to kill then.
            let Ok(meta) = fs::metadata(entry.path().join("ns/net")) else {
                continue;
            };
            // An `ip netns exec` just spawned may not have joined its namespace yet; it would
            // join after the name is gone and run on unseen. Its command line gives it away.
            if !targets.contains(&(meta.dev(), meta.ino()))
                && !is_entering(&entry.path().join("cmdline"), names)
            {
                // A child of ours just spawned may still be in the middle of becoming
                // `ip netns exec` (its parent resumes before the new program's command line
                // is set up): it shows no command line yet. Look again next round.
                unsure |= is_own_child_in_exec(&entry.path(), own);
                continue;
            }
            let Ok(raw) = i32::try_from(pid) else {
                continue;
            };
            // The process may have exited since: ESRCH is no error here.
            let _ = kill(Pid::from_raw(raw), Signal::SIGKILL);
            killed = true;
        }
        if !killed && !unsure {
            return Ok(());
        }
        std::thread::sleep(KILL_PAUSE);
    }
    Err(LabError::io(
        "killing the processes in the lab's namespaces",
        io::Error::other("processes kept appearing"),
    ))
}

/// Waits until every interface in namespace `name` but loopback has its carrier and is
/// operationally up, and every bridge port forwards. Nothing announces that, so this looks with `ip link` until it is so.
pub(super) fn wait_until_links_up(name: &str) -> Result<(), LabError> {
    let start = Instant::now();
    loop {
        let mut command = Command::new("ip");
        command.args(["-n", name, "-o", "-d", "link", "show"]);
        let text = describe(&command);
        let output = command
            .stderr(Stdio::inherit())
            .output()
            .map_err(|source| LabError::Spawn {
                command: text.clone(),
                source,
            })?;
        let links = String::from_utf8_lossy(&output.stdout);
        let waiting: Vec<&str> = links
            .lines()
            .filter(|line| !line.contains("LOOPBACK"))
            .filter(|line| {
                // A bridge stays UNKNOWN until the link watch gets to it, which does not matter:
                // no packet leaves through the bridge device itself.
                line.contains("NO-CARRIER")
                    || !(line.contains(" state UP ") || line.contains(" state UNKNOWN "))
                    || (line.contains("bridge_slave state ")
                        && !line.contains("bridge_slave state forwarding"))
            })
            .collect();
        if output.status.success() && waiting.is_empty() {
            return Ok(());
        }
        if start.elapsed() > LINKS_UP_TIMEOUT {
            return Err(LabError::io(
                format!("waiting for the links in {name} to come up"),
                io::Error::new(io::ErrorKind::TimedOut, waiting.join("\n")),
            ));
        }
        std::thread::sleep(LINKS_UP_PAUSE);
    }
}

/// Whether the process with command line file `cmdline` is an `ip netns exec` into one of
/// `names`.
fn is_entering(cmdline: &std::path::Path, names: &[&String]) -> bool {
    let Ok(cmdline) = fs::read(cmdline) else {
        return false;
    };
    let mut args = cmdline.split(|&byte| byte == 0);
    let program = args.next().unwrap_or_default();
    (program == b"ip" || program.ends_with(b"/ip"))
        && args.next() == Some(b"netns")
        && args.next() == Some(b"exec")
        && args
            .next()
            .is_some_and(|name| names.iter().any(|wanted| wanted.as_bytes() == name))
}

/// Whether the process at `/proc/PID` is a child of `parent` with no command line (yet).
fn is_own_child_in_exec(proc_pid: &std::path::Path, parent: u32) -> bool {
    let Ok(stat) = fs::read_to_string(proc_pid.join("stat")) else {
        return false;
    };
    // "PID (COMM) STATE PPID …": COMM may hold spaces and parentheses, so split after the
    // last ')'.
    let ppid = stat
        .rsplit(')')
        .next()
        .and_then(|rest| rest.split_whitespace().nth(1))
        .and_then(|p| p.parse::<u32>().ok());
    ppid == Some(parent)
        && fs::read(proc_pid.join("cmdline")).is_ok_and(|cmdline| cmdline.is_empty())
}

/// An `ip -batch -` command, inside namespace `netns` when given.
pub(super) fn ip(netns: Option<&str>) -> Command {
    let mut command = Command::new("ip");
    if let Some(netns) = netns {
        command.args(["-n", netns]);
    }
    command.args(["-batch", "-"]);
    command
}

/// Runs `command` with `input` on its standard input and waits for it to succeed.
pub(super) fn run(command: Command, input: &str) -> Result<(), LabError> {
    finish(start(command, input)?)
}

/// Starts `command` and writes `input` to it, without waiting: several can run side by side.
pub(super) fn start(mut command: Command, input: &str) -> Result<Started, LabError> {
    let text = describe(&command);
    command
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = command.spawn().map_err(|source| LabError::Spawn {
        command: text.clone(),
        source,
    })?;
    if let Some(mut stdin) = child.stdin.take() {
        // Dropping stdin closes it, which ends the batch.
        stdin
            .write_all(input.as_bytes())
            .map_err(|source| LabError::io(format!("writing to `{text}`"), source))?;
    }
    Ok(Started {
        child,
        command: text,
        input: input.to_owned(),
    })
}

/// A command [`start`]ed and not yet waited for.
pub(super) struct Started {
    child: Child,
    command: String,
    input: String,
}

/// Waits for a [`start`]ed command and turns a failure into an error that shows its input.
pub(super) fn finish(started: Started) -> Result<(), LabError> {
    let Started {
        child,
        command,
        input,
    } = started;
    let output = child.wait_with_output().map_err(|source| LabError::Spawn {
        command: command.clone(),
        source,
    })?;
    if output.status.success() {
        return Ok(());
    }
    let mut stderr = String::from_utf8_lossy(&output.stderr).trim().to_owned();
    if !input.is_empty() {
        stderr.push_str("\n--- its input:\n");
        stderr.push_str(&input);
    }
    Err(LabError::Failed {
        command,
        status: output.status,
        stderr,
    })
}

/// Runs `f` on a new thread that joined namespace `name`, and returns what it returned.
///
/// Sockets made on that thread belong to the namespace for their whole life, and processes it
/// spawns start there. A panic in `f` goes on in the caller.
pub(super) fn enter<T: Send>(name: &str, f: impl FnOnce() -> T + Send) -> Result<T, LabError> {
    let file =
        File::open(path(name)).map_err(|source| LabError::io(format!("opening {name}"), source))?;
    let joined = std::thread::scope(|scope| {
        scope
            .spawn(move || setns(&file, CloneFlags::CLONE_NEWNET).map(|()| f()))
            .join()
    });
    match joined {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(errno)) => Err(LabError::io(
            format!("entering namespace {name}"),
            io::Error::from(errno),
        )),
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

/// A command line as text, for error messages.
fn describe(command: &Command) -> String {
    std::iter::once(command.get_program())
        .chain(command.get_args())
        .map(|part| part.to_string_lossy())
        .collect::<Vec<_>>()
        .join(" ")
}
