//! The matrix's table: one row per cell and transport, the share of tries that ended direct,
//! their p50 and p95, the paths, and scripted rust-libp2p's beside them.

use std::collections::BTreeMap;

use super::{Outcome, Path};

/// One row of the table: a cell over one transport, and its tries.
pub(super) struct Row {
    pub(super) alice: String,
    pub(super) bob: String,
    pub(super) transport: String,
    /// peerfind's tries.
    pub(super) peerfind: Vec<Outcome>,
    /// Scripted rust-libp2p's tries, where it is compared: the time to direct, `None` when
    /// it did not end direct.
    pub(super) scripted: Option<Vec<Option<f64>>>,
}

/// The `q` quantile of `ms` (sorted), or `-`.
fn quantile(ms: &[f64], q: f64) -> String {
    if ms.is_empty() {
        return "-".into();
    }
    let i = ((ms.len() - 1) as f64 * q).round() as usize;
    ms.get(i).map_or("-".into(), |m| format!("{m:.0} ms"))
}

/// `direct` of `tries`, and as a share.
fn share(direct: usize, tries: usize) -> String {
    let pct = (direct * 100).checked_div(tries).unwrap_or(0);
    format!("{direct}/{tries} {pct}%")
}

/// The times of the tries that ended direct, sorted.
fn sorted(ms: impl Iterator<Item = Option<f64>>) -> Vec<f64> {
    let mut ms: Vec<f64> = ms.flatten().collect();
    ms.sort_by(f64::total_cmp);
    ms
}

/// Prints one row per cell and transport: peerfind's direct tries, p50 and p95 of the time to
/// direct and the paths; then scripted rust-libp2p's direct tries and p50 where compared.
pub(super) fn print(rows: &[Row]) {
    println!(
        "\n{:<20} {:<20} {:>5} {:>11} {:>8} {:>8}  {:<30} {:>11} {:>8} {:>11}",
        "Alice",
        "Bob",
        "",
        "direct",
        "p50",
        "p95",
        "paths",
        "rust direct",
        "rust p50",
        "relayed p50"
    );
    for row in rows {
        let ms = sorted(row.peerfind.iter().map(|o| o.ms));
        let mut paths: BTreeMap<Path, usize> = BTreeMap::new();
        for o in &row.peerfind {
            *paths.entry(o.path).or_default() += 1;
        }
        let paths: Vec<String> = paths
            .iter()
            .map(|(p, n)| format!("{} {n}", format!("{p:?}").to_lowercase()))
            .collect();
        let (theirs, theirs_p50) = match &row.scripted {
            Some(tries) => {
                let ms = sorted(tries.iter().copied());
                (share(ms.len(), tries.len()), quantile(&ms, 0.5))
            }
            None => ("-".into(), "-".into()),
        };
        let relayed = sorted(row.peerfind.iter().map(|o| o.relayed_ms));
        println!(
            "{:<20} {:<20} {:>5} {:>11} {:>8} {:>8}  {:<30} {:>11} {:>8} {:>11}",
            row.alice,
            row.bob,
            row.transport,
            share(ms.len(), row.peerfind.len()),
            quantile(&ms, 0.5),
            quantile(&ms, 0.95),
            paths.join(", "),
            theirs,
            theirs_p50,
            quantile(&relayed, 0.5),
        );
    }
}
