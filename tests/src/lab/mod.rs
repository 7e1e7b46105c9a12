//! A NAT lab: small networks of Linux network namespaces in which peerfind meets real NATs.
//!
//! # The network
//!
//! ```text
//!                      public segment 198.51.100.0/24 (a bridge)
//!   bootnode .10   charlie .20   nat-a wan .101   nat-b wan .102   [alice .30]  [bob .40]
//!                                     |                |
//!                      192.168.1.0/24 |                | 192.168.2.0/24
//!                        alice .2 ----+                +---- bob .2
//! ```
//!
//! Alice and Bob each sit either behind their router ([`Placement::BehindNat`]) or directly on the
//! public segment ([`Placement::Public`], at .30 and .40; their router is then not made). Hosts
//! behind a router route everything through it; the routers forward (`ip_forward=1`) and
//! translate with nftables as their [`NatMode`] says. Nothing is configured in the namespace the
//! lab runs from, and no packet leaves the lab's namespaces.
//!
//! Two more shapes:
//!
//! ```text
//!   behind a CGNAT (Placement::BehindCgnat)     one LAN (Placement::SameLan, Topology::shared_lan)
//!   nat-a wan .101  (the carrier's, eim)        nat-a wan .101
//!     | 100.64.1.0/24                             | 192.168.1.0/24 (a bridge in nat-a)
//!   home-a wan .2   (the home router)           alice .2, bob .3
//!     | 192.168.1.0/24
//!   alice .2
//! ```
//!
//! Bob behind a CGNAT uses nat-b, home-b, 100.64.2.0/24 and 192.168.2.0/24. Routers hairpin
//! when the topology says so ([`Topology::with_hairpin`]).
//!
//! # Use
//!
//! [`Lab::up`] makes the namespaces and [`Lab`]'s `Drop` removes them, after killing every process
//! still running in them, also when a test panics. Programs run in a host with [`Lab::command`]
//! or [`Lab::tokio_command`]; sockets are made in a host with [`Lab::in_host`]. Every lab has its
//! own name prefix, so labs run side by side within one process and across processes.
//!
//! Faults come and go while the lab runs: [`Lab::blackhole`] (a router forwards nothing),
//! [`Lab::set_link`] (a link down and up) and [`Lab::remap`] (a NAT moves its host to another
//! public port).
//!
//! A host's uplink (its link towards the public segment: to the bridge, or to its router when
//! NAT'd) can be given a delay and a loss rate with [`Topology::with_uplink`]; see [`Impairment`].
//!
//! The lab needs root, iproute2 (`ip`) and nftables (`nft`); without them [`Lab::up`] fails with
//! [`LabError::Unavailable`], whose message says how to run only the other tests. The lab's own
//! tests, and every test that uses it, have names starting with `lab_` for that reason.

mod error;
mod fault;
mod impair;
mod neighbours;
mod netns;
mod router;
mod topology;
mod upnp;
mod wiring;

pub use error::LabError;
pub use impair::Impairment;
pub use topology::{CARRIER_MODE, Host, NatMode, PREFIX_LEN, PUBLIC_NET, Placement, Topology};

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fmt;
use std::net::Ipv4Addr;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The suffix of the namespace that holds the public segment's bridge.
const PUBLIC_ROLE: &str = "public";

/// The longest prefix accepted: namespace names are file names, kept short for `ip netns list`.
const MAX_PREFIX_LEN: usize = 40;

/// A running lab. Dropping it kills the processes in its namespaces and deletes them.
pub struct Lab {
    /// The start of every namespace name of this lab.
    prefix: String,
    /// Where Alice and Bob sit.
    topology: Topology,
    /// Each host's namespace, indexed like [`Host::ALL`]; `None` for a router not made.
    hosts: [Option<String>; Host::ALL.len()],
    /// Every namespace this lab made or tried to make, the public one included.
    namespaces: Vec<String>,
    /// The impaired links, forwarded by this process.
    wires: Vec<impair::Wire>,
    /// Set by [`Lab::keep`] and after teardown: `Drop` then leaves the namespaces alone.
    disarmed: bool,
    /// The UPnP gateways of `upnp` routers; dropped after the teardown (`upnp`).
    gateways: Vec<upnp::Gateway>,
}

impl fmt::Debug for Lab {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lab")
            .field("prefix", &self.prefix)
            .field("topology", &self.topology)
            .finish_non_exhaustive()
    }
}

impl Lab {
    /// Makes a lab of `topology` under a fresh prefix: `pf`, this process's id, a counter and a
    /// random part, so that no two labs share a name, within one process or across processes.
    pub fn up(topology: Topology) -> Result<Lab, LabError> {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let prefix = format!("pf{}-{n}-{:04x}", std::process::id(), random_u64() & 0xffff);
        Lab::up_named(topology, &prefix)
    }

    /// Makes a lab of `topology` whose namespaces are called `PREFIX-HOST`, for a lab made by
    /// hand that other commands find again by its prefix.
    pub fn up_named(topology: Topology, prefix: &str) -> Result<Lab, LabError> {
        topology.check()?;
        check_machine()?;
        check_prefix(prefix)?;
        for host in Host::ALL {
            if let Some(Impairment { loss, .. }) = topology.uplink(host)
                && !(0.0..=1.0).contains(&loss)
            {
                return Err(LabError::Loss { host, loss });
            }
        }
        let public = format!("{prefix}-{PUBLIC_ROLE}");
        if netns::path(&public).exists() {
            return Err(LabError::Prefix {
                prefix: prefix.to_owned(),
                reason: "is in use: remove that lab first",
            });
        }
        let present = topology.hosts();
        let hosts = Host::ALL.map(|host| present.contains(&host).then(|| netns_name(prefix, host)));
        let mut namespaces = vec![public];
        namespaces.extend(hosts.iter().flatten().cloned());
        // From here on a failure drops `lab`, which removes whatever was made.
        let mut lab = Lab {
            prefix: prefix.to_owned(),
            topology,
            hosts,
            namespaces,
            wires: Vec::new(),
            disarmed: false,
            gateways: Vec::new(),
        };
        netns::create(&lab.namespaces).map_err(|error| match error {
            LabError::Failed { stderr, .. } => LabError::Unavailable {
                reason: format!("`ip netns add` failed: {stderr}"),
            },
            other => other,
        })?;
        lab.wire()?;
        lab.start_routers()?;
        lab.start_gateways()?;
        neighbours::pin(&lab.namespaces)?;
        Ok(lab)
    }

    /// The prefix every namespace name of this lab starts with.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Where Alice and Bob sit in this lab.
    pub fn topology(&self) -> Topology {
        self.topology
    }

    /// Whether `host` exists here: a router exists only when its host is behind it.
    pub fn has(&self, host: Host) -> bool {
        self.namespace(host).is_some()
    }

    /// The host's own address: a LAN address for a NAT'd host, a router's WAN address (a
    /// carrier address for a home router behind a CGNAT).
    pub fn ip(&self, host: Host) -> Ipv4Addr {
        self.topology.address(host)
    }

    /// The address strangers on the public segment see the host as: its outermost router's
    /// WAN address for a NAT'd host, its own address otherwise.
    pub fn public_ip(&self, host: Host) -> Ipv4Addr {
        self.topology.public_address(host)
    }

    /// The name of the host's namespace, for `ip netns exec` and `nsenter --net=/run/netns/NAME`.
    ///
    /// # Panics
    ///
    /// When `host` is a router that this topology does not have (see [`Lab::has`]): asking for
    /// it is a mistake in the test.
    pub fn netns(&self, host: Host) -> &str {
        match self.namespace(host) {
            Some(name) => name,
            None => panic!(
                "{host} is not part of this lab: its host is on the public segment ({:?})",
                self.topology
            ),
        }
    }

    fn namespace(&self, host: Host) -> Option<&str> {
        self.hosts[host as usize].as_deref()
    }

    /// A command that runs `program` inside `host` (through `ip netns exec`). Add arguments and
    /// run it as usual; teardown kills it if it is still running then.
    ///
    /// # Panics
    ///
    /// As [`Lab::netns`].
    pub fn command(&self, host: Host, program: impl AsRef<OsStr>) -> std::process::Command {
        let mut command = std::process::Command::new("ip");
        command
            .args(["netns", "exec", self.netns(host)])
            .arg(program);
        command
    }

    /// [`Lab::command`] for async tests.
    ///
    /// # Panics
    ///
    /// As [`Lab::netns`].
    pub fn tokio_command(&self, host: Host, program: impl AsRef<OsStr>) -> tokio::process::Command {
        tokio::process::Command::from(self.command(host, program))
    }

    /// Runs `f` on a thread inside `host` and returns its result. Sockets `f` makes belong to
    /// the host for their whole life, wherever they are used afterwards; that is how a test
    /// puts a socket (std or, after `set_nonblocking`, tokio) into a host without a process.
    ///
    /// # Panics
    ///
    /// As [`Lab::netns`]; a panic in `f` goes on in the caller.
    pub fn in_host<T: Send>(
        &self,
        host: Host,
        f: impl FnOnce() -> T + Send,
    ) -> Result<T, LabError> {
        netns::enter(self.netns(host), f)
    }

    /// Opens TCP connections from inside `host`, for as long as the lab runs: how a test
    /// talks to a program that listens on the host's own loopback (a node's status API).
    ///
    /// # Panics
    ///
    /// As [`Lab::netns`].
    pub fn dialer(&self, host: Host) -> HostDialer {
        HostDialer {
            netns: self.netns(host).to_owned(),
        }
    }

    /// Leaves the lab running after this value is gone, and returns its prefix: for labs made
    /// by hand, removed later with [`remove`]. Impaired links stop with this process, since it
    /// forwards them.
    pub fn keep(mut self) -> String {
        self.disarmed = true;
        std::mem::take(&mut self.prefix)
    }

    /// Removes the lab now and says whether that worked; dropping it does the same silently.
    pub fn down(mut self) -> Result<(), LabError> {
        self.disarmed = true;
        self.teardown()
    }

    /// Stops the impaired links, then kills the processes and deletes the namespaces.
    fn teardown(&mut self) -> Result<(), LabError> {
        // The TAP devices hold their namespaces alive: close them first.
        self.wires.clear();
        netns::remove(&self.namespaces)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if self.disarmed {
            return;
        }
        // Drop cannot return the error, and a test may be unwinding already: say it.
        if let Err(error) = self.teardown() {
            eprintln!("lab {}: teardown failed: {error}", self.prefix);
        }
    }
}

/// Connects to addresses as a program inside one lab host would ([`Lab::dialer`]).
#[derive(Debug, Clone)]
pub struct HostDialer {
    netns: String,
}

impl HostDialer {
    /// Bound on one connection's set-up: a program on the host's loopback answers at once.
    const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

    /// A TCP connection to `addr`, made inside the host; it stays there wherever it is used.
    /// Blocking: call it off the async runtime's threads.
    pub fn connect(&self, addr: std::net::SocketAddr) -> std::io::Result<std::net::TcpStream> {
        netns::enter(&self.netns, || {
            std::net::TcpStream::connect_timeout(&addr, Self::CONNECT_TIMEOUT)
        })
        .map_err(std::io::Error::other)?
    }
}

/// The namespace name of `host` in the lab called `prefix`.
pub fn netns_name(prefix: &str, host: Host) -> String {
    format!("{prefix}-{}", host.name())
}

/// The labs present on this machine: each prefix with its namespaces. A namespace counts as a
/// lab's when its name ends in `-public` or `-HOST`, and its prefix has a `-public` one.
pub fn list() -> Result<BTreeMap<String, Vec<String>>, LabError> {
    let names = netns::names()?;
    let mut labs = BTreeMap::new();
    for name in &names {
        if let Some(prefix) = name.strip_suffix(&format!("-{PUBLIC_ROLE}")) {
            let members = lab_members(&names, prefix);
            labs.insert(prefix.to_owned(), members);
        }
    }
    Ok(labs)
}

/// Removes the lab called `prefix`, as dropping its [`Lab`] would, and returns the names of the
/// namespaces removed. Also removes what a crashed test left behind.
pub fn remove(prefix: &str) -> Result<Vec<String>, LabError> {
    check_prefix(prefix)?;
    let members = lab_members(&netns::names()?, prefix);
    netns::remove(&members)?;
    Ok(members)
}

/// The namespaces of lab `prefix` among `names`.
fn lab_members(names: &std::collections::BTreeSet<String>, prefix: &str) -> Vec<String> {
    std::iter::once(format!("{prefix}-{PUBLIC_ROLE}"))
        .chain(Host::ALL.map(|host| netns_name(prefix, host)))
        .filter(|name| names.contains(name))
        .collect()
}

/// Checks, once per process, that this process can make namespaces and has `ip` and `nft`.
fn check_machine() -> Result<(), LabError> {
    static CHECKED: OnceLock<Result<(), String>> = OnceLock::new();
    let checked = CHECKED.get_or_init(|| {
        if !nix::unistd::geteuid().is_root() {
            return Err(format!(
                "this process runs as uid {}, not root",
                nix::unistd::geteuid()
            ));
        }
        for (tool, version) in [("ip", "-V"), ("nft", "--version")] {
            match std::process::Command::new(tool)
                .arg(version)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status()
            {
                Ok(status) if status.success() => {}
                Ok(status) => return Err(format!("`{tool} {version}` failed ({status})")),
                Err(error) => return Err(format!("`{tool}` cannot be run ({error})")),
            }
        }
        Ok(())
    });
    checked
        .clone()
        .map_err(|reason| LabError::Unavailable { reason })
}

/// Refuses prefixes that would make odd file or interface names.
fn check_prefix(prefix: &str) -> Result<(), LabError> {
    let reason = if prefix.is_empty() || prefix.len() > MAX_PREFIX_LEN {
        Some("must have 1 to 40 characters")
    } else if !prefix
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        Some("may hold only ASCII letters, digits, '-' and '_'")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(LabError::Prefix {
            prefix: prefix.to_owned(),
            reason,
        }),
        None => Ok(()),
    }
}

/// Random bits without a dependency: std seeds every `RandomState` from the OS.
fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|elapsed| elapsed.as_nanos())
            .unwrap_or_default(),
    );
    hasher.finish()
}
