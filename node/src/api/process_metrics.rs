//! What a dashboard shows of the process beside its peers: which build runs
//! (`peerfind_build_info`) and what it costs the machine, under the names every Prometheus
//! client library uses (`process_resident_memory_bytes`, `process_cpu_seconds_total`,
//! `process_open_fds`, `process_max_fds`), read from `/proc/self` at each scrape.
//!
//! Read here rather than through a crate: prometheus-client has no process collector, and the
//! four numbers are a few lines of `/proc` each (Linux only, as the project is; a field that
//! cannot be read is left out of the scrape, not reported as 0).

use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::registry::Registry;

/// Linux reports CPU time in clock ticks of 1/100 s (`USER_HZ`) on every architecture.
const TICKS_PER_SECOND: f64 = 100.0;

/// The build and process metrics, as a registry made for one scrape.
pub(super) fn registry() -> Registry {
    let mut r = Registry::default();
    let build = Family::<Vec<(&'static str, String)>, Gauge>::default();
    build
        .get_or_create(&vec![("version", env!("CARGO_PKG_VERSION").to_owned())])
        .set(1);
    r.register(
        "peerfind_build_info",
        "The running build: 1, labelled with its version",
        build,
    );
    if let Some(bytes) = resident_bytes() {
        r.register(
            "process_resident_memory_bytes",
            "Resident memory size in bytes",
            ConstGauge::new(bytes),
        );
    }
    if let Some(seconds) = cpu_seconds() {
        r.register(
            "process_cpu_seconds",
            "Total user and system CPU time spent in seconds",
            ConstCounter::new(seconds),
        );
    }
    if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
        r.register(
            "process_open_fds",
            "Number of open file descriptors",
            ConstGauge::new(i64::try_from(dir.count()).unwrap_or(i64::MAX)),
        );
    }
    if let Some(max) = max_fds() {
        r.register(
            "process_max_fds",
            "Maximum number of open file descriptors",
            ConstGauge::new(max),
        );
    }
    r
}

/// `VmRSS` of `/proc/self/status`, in bytes.
fn resident_bytes() -> Option<i64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kib: i64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    kib.checked_mul(1024)
}

/// User and system time of `/proc/self/stat` (fields 14 and 15), in seconds.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name may hold spaces and parentheses: count from the last ')'.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / TICKS_PER_SECOND)
}

/// The soft limit on open files, from `/proc/self/limits`.
fn max_fds() -> Option<i64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    limits
        .lines()
        .find(|l| l.starts_with("Max open files"))?
        .split_whitespace()
        .nth(3)?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_read() {
        assert!(resident_bytes().is_some_and(|b| b > 0));
        assert!(cpu_seconds().is_some());
        assert!(max_fds().is_some_and(|n| n > 0));
    }
}
