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
//! # Use
//!
//! [`Lab::up`] makes the namespaces and [`Lab`]'s `Drop` removes them, after killing every process
//! still running in them, also when a test panics. Programs run in a host with [`Lab::command`]
//! or [`Lab::tokio_command`]; sockets are made in a host with [`Lab::in_host`]. Every lab has its
//! own name prefix, so labs run side by side within one process and across processes.
//!
//! A host's uplink (its link towards the public segment: to the bridge, or to its router when
//! NAT'd) can be given a delay and a loss rate with [`Topology::with_uplink`]; see [`Impairment`].
//!
//! The lab needs root, iproute2 (`ip`) and nftables (`nft`); without them [`Lab::up`] fails with
//! [`LabError::Unavailable`], whose message says how to run only the other tests. The lab's own
//! tests, and every test that uses it, have names starting with `lab_` for that reason.

mod impair;
mod netns;
mod router;

pub use impair::Impairment;

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fmt;
use std::io;
use std::net::Ipv4Addr;
use std::process::ExitStatus;
use std::str::FromStr;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The public segment, a documentation range (RFC 5737) that routes nowhere outside the lab.
pub const PUBLIC_NET: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 0);

/// The prefix length of every network in the lab.
pub const PREFIX_LEN: u8 = 24;

/// The suffix of the namespace that holds the public segment's bridge.
const PUBLIC_ROLE: &str = "public";

/// The public segment's bridge, inside the public namespace.
const BRIDGE: &str = "br0";

/// A host's one interface (a router has [`router::WAN`] and [`router::LAN`] instead).
const ETH: &str = "eth0";

/// The longest prefix accepted: namespace names are file names, kept short for `ip netns list`.
const MAX_PREFIX_LEN: usize = 40;

/// How a router maps and filters, in the terms of RFC 4787.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NatMode {
    /// Endpoint-independent mapping (the public port is kept for every destination, and is the
    /// host's own port when free) with address-and-port-dependent filtering (only replies from
    /// the exact address and port the host sent to come in). What hole punching expects.
    EndpointIndependent,
    /// Symmetric: a new public port for each destination, so a port learned from one peer is
    /// useless to another. Hole punching fails; peerfind must fall back to a relay.
    Symmetric,
    /// Full cone: endpoint-independent mapping and everything arriving on the router's public
    /// address goes to the one LAN host. The control where every host is reachable.
    FullCone,
}

/// Where Alice or Bob sits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Placement {
    /// Directly on the public segment (Alice at .30, Bob at .40); the host's router is not made.
    Public,
    /// On a LAN behind the host's own router, which works in the given mode.
    BehindNat(NatMode),
}

/// The shape of a lab: where Alice and Bob sit, and which links are slow or lossy. The bootnode
/// and Charlie are always public.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Topology {
    /// Alice's place; behind nat-a when NAT'd.
    pub alice: Placement,
    /// Bob's place; behind nat-b when NAT'd.
    pub bob: Placement,
    /// Each host's uplink impairment, indexed like [`Host::ALL`].
    uplinks: [Option<Impairment>; 6],
}

impl Default for Topology {
    /// Both behind endpoint-independent NATs: the case hole punching is made for.
    fn default() -> Self {
        Self::new(
            Placement::BehindNat(NatMode::EndpointIndependent),
            Placement::BehindNat(NatMode::EndpointIndependent),
        )
    }
}

impl Topology {
    /// Alice and Bob placed as given.
    pub fn new(alice: Placement, bob: Placement) -> Self {
        Self {
            alice,
            bob,
            uplinks: [None; 6],
        }
    }

    /// This topology with `host`'s uplink impaired: the link from the host towards the public
    /// segment, which is the link to its router for a NAT'd host and the WAN link for a
    /// router. Emulated in this process; see [`Impairment`].
    pub fn with_uplink(mut self, host: Host, impairment: Impairment) -> Self {
        self.uplinks[host as usize] = Some(impairment);
        self
    }

    /// The impairment of `host`'s uplink, if any.
    pub fn uplink(&self, host: Host) -> Option<Impairment> {
        self.uplinks[host as usize]
    }

    /// The hosts that exist in this topology: a router only when its host is behind it.
    pub fn hosts(&self) -> Vec<Host> {
        Host::ALL
            .into_iter()
            .filter(|host| match host {
                Host::NatA => matches!(self.alice, Placement::BehindNat(_)),
                Host::NatB => matches!(self.bob, Placement::BehindNat(_)),
                Host::Bootnode | Host::Charlie | Host::Alice | Host::Bob => true,
            })
            .collect()
    }

    /// The mode of `host`'s router, when `host` is Alice or Bob behind one.
    fn nat(&self, host: Host) -> Option<NatMode> {
        match (host, self.alice, self.bob) {
            (Host::Alice | Host::NatA, Placement::BehindNat(mode), _)
            | (Host::Bob | Host::NatB, _, Placement::BehindNat(mode)) => Some(mode),
            _ => None,
        }
    }
}

/// A machine in the lab.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Host {
    /// The well-known public peer every node starts from.
    Bootnode,
    /// A second public peer: a stranger to Alice and Bob, and a second observer.
    Charlie,
    /// A peer behind nat-a, or public at .30.
    Alice,
    /// A peer behind nat-b, or public at .40.
    Bob,
    /// Alice's router.
    NatA,
    /// Bob's router.
    NatB,
}

impl Host {
    /// Every host, in a fixed order.
    pub const ALL: [Host; 6] = [
        Host::Bootnode,
        Host::Charlie,
        Host::Alice,
        Host::Bob,
        Host::NatA,
        Host::NatB,
    ];

    /// The host's name: the suffix of its namespace and its bridge port's name.
    pub fn name(self) -> &'static str {
        match self {
            Host::Bootnode => "bootnode",
            Host::Charlie => "charlie",
            Host::Alice => "alice",
            Host::Bob => "bob",
            Host::NatA => "nat-a",
            Host::NatB => "nat-b",
        }
    }

    /// The host's router, for Alice and Bob.
    fn router(self) -> Option<Host> {
        match self {
            Host::Alice => Some(Host::NatA),
            Host::Bob => Some(Host::NatB),
            Host::Bootnode | Host::Charlie | Host::NatA | Host::NatB => None,
        }
    }

    /// The host behind a router.
    fn lan_host(self) -> Option<Host> {
        match self {
            Host::NatA => Some(Host::Alice),
            Host::NatB => Some(Host::Bob),
            Host::Bootnode | Host::Charlie | Host::Alice | Host::Bob => None,
        }
    }

    /// The address on the public segment, when the host is (or, for a router, its WAN is) there.
    fn public_address(self) -> Ipv4Addr {
        let last = match self {
            Host::Bootnode => 10,
            Host::Charlie => 20,
            Host::Alice => 30,
            Host::Bob => 40,
            Host::NatA => 101,
            Host::NatB => 102,
        };
        let [a, b, c, _] = PUBLIC_NET.octets();
        Ipv4Addr::new(a, b, c, last)
    }

    /// The LAN behind a router, or around a NAT'd host: its third octet.
    fn lan_octet(self) -> u8 {
        match self {
            Host::Alice | Host::NatA => 1,
            Host::Bob | Host::NatB | Host::Bootnode | Host::Charlie => 2,
        }
    }

    /// The router's address on its LAN, which is the NAT'd host's gateway.
    fn lan_gateway(self) -> Ipv4Addr {
        Ipv4Addr::new(192, 168, self.lan_octet(), 1)
    }

    /// The NAT'd host's address on its LAN.
    fn lan_address(self) -> Ipv4Addr {
        Ipv4Addr::new(192, 168, self.lan_octet(), 2)
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

impl FromStr for Host {
    type Err = LabError;

    /// Parses a host's [`name`](Host::name), also without the dash (`nata`) or as `boot`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let wanted = s.to_ascii_lowercase().replace('-', "");
        Host::ALL
            .into_iter()
            .find(|host| {
                host.name().replace('-', "") == wanted
                    || (wanted == "boot" && *host == Host::Bootnode)
            })
            .ok_or_else(|| LabError::UnknownHost(s.to_owned()))
    }
}

/// What can go wrong when making, using or removing a lab.
#[derive(thiserror::Error)]
pub enum LabError {
    /// This machine or process cannot make a lab: not root, or `ip` or `nft` missing.
    #[error(
        "the NAT lab needs root and iproute2 (`ip`) and nftables (`nft`), and {reason}. Run the \
         lab tests as root on Linux after `apt-get install -y iproute2 nftables conntrack`, or \
         run only the tests that need neither: `cargo test -- --skip lab_`"
    )]
    Unavailable {
        /// What is missing.
        reason: String,
    },
    /// A command the lab runs could not be started or waited for.
    #[error("could not run `{command}`: {source}")]
    Spawn {
        /// The command line.
        command: String,
        /// Why.
        source: io::Error,
    },
    /// A command the lab runs failed.
    #[error("`{command}` failed ({status}): {stderr}")]
    Failed {
        /// The command line.
        command: String,
        /// How it ended.
        status: ExitStatus,
        /// What it printed on standard error, and its input.
        stderr: String,
    },
    /// An operation of the lab's own process failed: entering a namespace, scanning processes.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// Why it failed.
        source: io::Error,
    },
    /// A prefix that cannot name a lab, or names one that exists already.
    #[error("lab prefix {prefix:?} {reason}")]
    Prefix {
        /// The prefix asked for.
        prefix: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// An impairment that cannot be emulated.
    #[error("{host}'s uplink: the loss rate must be from 0 to 1, not {loss}")]
    Loss {
        /// Whose uplink.
        host: Host,
        /// The rate asked for.
        loss: f64,
    },
    /// A host name that names no host.
    #[error("no host is called {0:?}: try bootnode, charlie, alice, bob, nat-a or nat-b")]
    UnknownHost(String),
}

impl LabError {
    fn io(what: impl Into<String>, source: io::Error) -> Self {
        LabError::Io {
            what: what.into(),
            source,
        }
    }
}

/// Shows the message, so that a test's `expect` or `unwrap` prints what to do.
impl fmt::Debug for LabError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// A running lab. Dropping it kills the processes in its namespaces and deletes them.
pub struct Lab {
    /// The start of every namespace name of this lab.
    prefix: String,
    /// Where Alice and Bob sit.
    topology: Topology,
    /// Each host's namespace, indexed like [`Host::ALL`]; `None` for a router not made.
    hosts: [Option<String>; 6],
    /// Every namespace this lab made or tried to make, the public one included.
    namespaces: Vec<String>,
    /// The impaired links, forwarded by this process.
    wires: Vec<impair::Wire>,
    /// Set by [`Lab::keep`] and after teardown: `Drop` then leaves the namespaces alone.
    disarmed: bool,
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
        };
        netns::create(&lab.namespaces).map_err(|error| match error {
            LabError::Failed { stderr, .. } => LabError::Unavailable {
                reason: format!("`ip netns add` failed: {stderr}"),
            },
            other => other,
        })?;
        lab.wire()?;
        lab.start_routers()?;
        Ok(lab)
    }

    /// Makes the links (veth pairs, or TAP pairs for impaired links) and the bridge, and gives
    /// every interface its address and route.
    fn wire(&mut self) -> Result<(), LabError> {
        let public = self.namespaces[0].clone();
        // Each veth end is made directly in its namespace, so names never meet in the
        // namespace the lab runs from, and every host can call its interface eth0.
        let mut links = String::new();
        let mut bridge = format!("link set lo up\nlink add name {BRIDGE} type bridge\n");
        let mut scripts = Vec::new();
        let mut impaired = Vec::new();
        for host in self.topology.hosts() {
            let ns = self.netns(host).to_owned();
            let mut script = String::from("link set lo up\n");
            let up = |script: &mut String, dev: &str, addr: Ipv4Addr| {
                script.push_str(&format!(
                    "addr add {addr}/{PREFIX_LEN} dev {dev}\nlink set {dev} up\n"
                ));
            };
            // The host's uplink: its interface, and the namespace and interface at the other end.
            let (dev, peer_ns, peer_dev) = match (host.router(), host.lan_host()) {
                // A router: its WAN on the public segment; its LAN comes with its host's uplink.
                (None, Some(_)) => {
                    up(&mut script, router::WAN, host.public_address());
                    up(&mut script, router::LAN, host.lan_gateway());
                    (router::WAN, public.clone(), host.name())
                }
                // Alice or Bob behind a router: the uplink is the whole LAN.
                (Some(router), None) if self.topology.nat(host).is_some() => {
                    up(&mut script, ETH, host.lan_address());
                    script.push_str(&format!("route add default via {}\n", host.lan_gateway()));
                    (ETH, self.netns(router).to_owned(), router::LAN)
                }
                _ => {
                    up(&mut script, ETH, host.public_address());
                    (ETH, public.clone(), host.name())
                }
            };
            if peer_ns == public {
                bridge.push_str(&format!(
                    "link set {peer_dev} master {BRIDGE}\nlink set {peer_dev} up\n"
                ));
            }
            match self.topology.uplink(host) {
                Some(impairment) => impaired.push((ns.clone(), dev, peer_ns, peer_dev, impairment)),
                None => links.push_str(&format!(
                    "link add name {peer_dev} netns {peer_ns} type veth peer name {dev} netns {ns}\n"
                )),
            }
            scripts.push((ns, script));
        }
        bridge.push_str(&format!("link set {BRIDGE} up\n"));
        scripts.push((public, bridge));
        if !links.is_empty() {
            netns::run(netns::ip(None), &links)?;
        }
        for (ns, dev, peer_ns, peer_dev, impairment) in impaired {
            let host_end = impair::End {
                netns: &ns,
                device: dev,
            };
            let peer_end = impair::End {
                netns: &peer_ns,
                device: peer_dev,
            };
            self.wires
                .push(impair::Wire::start(host_end, peer_end, impairment)?);
        }
        // The namespaces are independent now: configure them side by side.
        let started: Vec<_> = scripts
            .iter()
            .map(|(ns, script)| netns::start(netns::ip(Some(ns)), script))
            .collect();
        let mut first_error = None;
        for started in started {
            if let Err(error) = started.and_then(netns::finish) {
                first_error.get_or_insert(error);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Turns forwarding on in the routers and loads their rule sets.
    fn start_routers(&self) -> Result<(), LabError> {
        for router in [Host::NatA, Host::NatB] {
            let (Some(ns), Some(lan_host)) = (self.namespace(router), router.lan_host()) else {
                continue;
            };
            let Some(mode) = self.topology.nat(router) else {
                continue;
            };
            netns::enter(ns, || std::fs::write("/proc/sys/net/ipv4/ip_forward", "1"))?
                .map_err(|source| LabError::io(format!("turning on forwarding in {ns}"), source))?;
            let mut nft = self.command(router, "nft");
            nft.args(["-f", "-"]);
            netns::run(nft, &router::ruleset(mode, lan_host.lan_address()))?;
        }
        Ok(())
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

    /// The host's own address: a LAN address for a NAT'd host, a router's WAN address.
    pub fn ip(&self, host: Host) -> Ipv4Addr {
        if host.router().is_some() && self.topology.nat(host).is_some() {
            host.lan_address()
        } else {
            host.public_address()
        }
    }

    /// The address strangers on the public segment see the host as: its router's WAN address
    /// for a NAT'd host, its own address otherwise.
    pub fn public_ip(&self, host: Host) -> Ipv4Addr {
        match host.router() {
            Some(router) if self.topology.nat(host).is_some() => router.public_address(),
            _ => host.public_address(),
        }
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

    /// Leaves the lab running after this value is gone, and returns its prefix: for labs made
    /// by hand, removed later with [`remove`].
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
