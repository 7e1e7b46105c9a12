//! The UPnP-IGD gateway of a router in [`NatMode::Upnp`]: Debian's miniupnpd (the nftables
//! build) in the router's namespace, serving the LAN only, in secure mode (a client maps
//! ports to its own address), and only for the LAN host's address. NAT-PMP and PCP are on
//! too, as on a home router.
//!
//! Its configuration, lease file, pid file and log live in a temporary directory of its own,
//! removed with the [`Gateway`]; the daemon is killed then (and by the lab's teardown, which
//! kills every process in its namespaces, if a test panics first). Its nftables chains come
//! with the router's rule set (`container/router.nft`, mode `upnp`).
//!
//! Its WAN is the public segment's documentation address like every other router's, which
//! miniupnpd (2.3.1, Debian's) takes for a router behind another NAT: it refuses every
//! special-purpose range on its external interface ("Reserved / private IP address ... Port
//! forwarding is impossible"), `ext_ip=` refuses them too, and it has no option to allow one
//! (`ext_allow_private_ipv4` came in a later release). What it does accept is a STUN check:
//! with `ext_perform_stun=yes` it asks a STUN server for its public address from four ports,
//! and when all four answers come back from the server's address unchanged, it concludes it
//! sits behind an unfiltered 1:1 NAT and serves, with that address as its external one. The
//! lab gives it that server: [`stun`] answers binding requests on the router's own WAN address,
//! from inside the router, with the address each request came from, which is the router's
//! WAN address itself: the truth, since nothing translates it.

use std::fs;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{Host, Lab, LabError, NatMode, router};

mod stun;

/// How long miniupnpd may take to open its sockets: it starts in milliseconds.
const START_TIMEOUT: Duration = Duration::from_secs(5);

/// The pause between two looks at miniupnpd's log while it starts.
const START_PAUSE: Duration = Duration::from_millis(5);

/// The line miniupnpd logs last as it starts: every socket is open then.
const READY_LINE: &str = "Listening for NAT-PMP/PCP traffic";

/// The chain in which miniupnpd puts one DNAT rule per mapping (`container/router.nft`).
const NAT_CHAIN: [&str; 3] = ["inet", "upnp", "prerouting_miniupnpd"];

/// A running miniupnpd. Dropping it kills the daemon and removes its directory.
pub(super) struct Gateway {
    router: Host,
    daemon: Child,
    dir: tempfile::TempDir,
    /// The STUN server miniupnpd asks for its public address; stops when dropped.
    _stun: stun::Server,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        // Already gone when the lab's teardown ran first.
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
    }
}

impl Gateway {
    fn log_path(&self) -> PathBuf {
        self.dir.path().join("miniupnpd.log")
    }
}

impl Lab {
    /// Starts the miniupnpd of each `upnp` router.
    pub(super) fn start_gateways(&mut self) -> Result<(), LabError> {
        for router in self.topology().hosts() {
            if self.topology().mode(router) != Some(NatMode::Upnp) {
                continue;
            }
            let gateway = self.start_gateway(router)?;
            self.gateways.push(gateway);
        }
        Ok(())
    }

    /// Starts miniupnpd in `router` and waits until it serves.
    fn start_gateway(&self, router: Host) -> Result<Gateway, LabError> {
        let dir = tempfile::Builder::new()
            .prefix("peerfind-lab-upnp-")
            .tempdir()
            .map_err(|source| LabError::io("making miniupnpd's directory", source))?;
        let topology = self.topology();
        let lan_host = topology
            .lan_hosts(router)
            .first()
            .map_or(Ipv4Addr::UNSPECIFIED, |&host| topology.address(host));
        let wan = topology.address(router);
        let stun = self.in_host(router, || stun::Server::start(wan))??;
        let config = format!(
            "ext_ifname={wan_if}\next_perform_stun=yes\next_stun_host={wan}\next_stun_port={stun_port}\n\
             listening_ip={lan}\nhttp_port=0\nenable_upnp=yes\nenable_natpmp=yes\n\
             secure_mode=yes\nsystem_uptime=yes\nlease_file={leases}\n\
             uuid=00000000-0000-4000-8000-0000000000{n:02x}\n\
             upnp_table_name=fw\nupnp_forward_chain=miniupnpd\nupnp_nat_table_name=upnp\n\
             upnp_nat_chain=prerouting_miniupnpd\nupnp_nat_postrouting_chain=postrouting_miniupnpd\n\
             allow 1024-65535 {lan_host}/32 1024-65535\ndeny 0-65535 0.0.0.0/0 0-65535\n",
            wan_if = router::WAN,
            stun_port = stun.port(),
            lan = router::LAN,
            leases = dir.path().join("leases").display(),
            n = wan.octets()[3],
        );
        let config_path = dir.path().join("miniupnpd.conf");
        fs::write(&config_path, config)
            .map_err(|source| LabError::io("writing miniupnpd's configuration", source))?;
        let log_path = dir.path().join("miniupnpd.log");
        let log = fs::File::create(&log_path)
            .map_err(|source| LabError::io("making miniupnpd's log", source))?;
        let err_log = log
            .try_clone()
            .map_err(|source| LabError::io("making miniupnpd's log", source))?;
        let mut command = self.command(router, "miniupnpd");
        command
            .arg("-f")
            .arg(&config_path)
            .arg("-P")
            .arg(dir.path().join("miniupnpd.pid"))
            // In the foreground, logging to standard error.
            .arg("-d")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err_log);
        let daemon = command.spawn().map_err(|source| LabError::Spawn {
            command: "miniupnpd (apt-get install miniupnpd-nftables)".into(),
            source,
        })?;
        let mut gateway = Gateway {
            router,
            daemon,
            dir,
            _stun: stun,
        };
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let text = fs::read_to_string(gateway.log_path()).unwrap_or_default();
            if text.contains(READY_LINE) {
                return Ok(gateway);
            }
            let exited = gateway.daemon.try_wait().ok().flatten();
            if exited.is_some() || Instant::now() >= deadline {
                return Err(LabError::Io {
                    what: format!("starting miniupnpd in {router} ({exited:?})"),
                    source: std::io::Error::other(text),
                });
            }
            std::thread::sleep(START_PAUSE);
        }
    }

    /// The port mappings `router`'s gateway holds now: its DNAT rules, one line each (as
    /// `nft` prints them: protocol, port and the LAN address they go to). Empty for a router
    /// without a gateway.
    pub fn port_mappings(&self, router: Host) -> Result<Vec<String>, LabError> {
        if !self.gateways.iter().any(|g| g.router == router) {
            return Ok(Vec::new());
        }
        let mut nft = self.command(router, "nft");
        nft.arg("list").arg("chain").args(NAT_CHAIN);
        let out = run_output(nft)?;
        Ok(out
            .lines()
            .map(str::trim)
            .filter(|l| l.contains("dnat"))
            .map(str::to_owned)
            .collect())
    }

    /// What `router`'s gateway logged, for a failing test's output ("" without a gateway).
    pub fn gateway_log(&self, router: Host) -> String {
        self.gateways
            .iter()
            .find(|g| g.router == router)
            .and_then(|g| fs::read_to_string(g.log_path()).ok())
            .unwrap_or_default()
    }
}

/// Runs `command` and returns its standard output.
fn run_output(mut command: Command) -> Result<String, LabError> {
    let text = format!("{command:?}");
    let out = command.output().map_err(|source| LabError::Spawn {
        command: text.clone(),
        source,
    })?;
    if !out.status.success() {
        return Err(LabError::Failed {
            command: text,
            status: out.status,
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
