//! What a run records: the machine, the load, the version of every program, the options, and
//! one record per measurement. Written as JSON (`frr-lab bench ... --out DIR`), read back by
//! `frr-lab bench report`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::sys::{self, Machine};
use super::{BenchError, BenchOptions, Workload};

/// The circumstances of a run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunInfo {
    /// The workload.
    pub workload: Workload,
    /// When it started and finished (RFC 3339).
    pub started: String,
    /// When it finished.
    pub finished: String,
    /// The machine.
    pub machine: Machine,
    /// 1-minute load average before and after.
    pub load_before: f64,
    /// After.
    pub load_after: f64,
    /// Program → version line.
    pub versions: BTreeMap<String, String>,
    /// The options.
    pub options: BenchOptions,
}

impl RunInfo {
    /// Collects everything but the end.
    pub fn collect(workload: Workload, opts: &BenchOptions) -> RunInfo {
        let mut versions = BTreeMap::new();
        versions.insert(
            "lbspeaker".to_owned(),
            crate::lab::find_lbspeaker(opts.lbspeaker.as_deref()).map_or_else(
                || "not found".to_owned(),
                |p| sys::version_of(&p.to_string_lossy(), "--version"),
            ),
        );
        versions.insert(
            "bench-speaker (bgp crate)".to_owned(),
            format!("frr-lab {}", env!("CARGO_PKG_VERSION")),
        );
        versions.insert("gobgpd".into(), sys::version_of("gobgpd", "--version"));
        versions.insert("bird".into(), sys::version_of("bird", "--version"));
        versions.insert(
            "frr".into(),
            sys::version_of("/usr/lib/frr/bgpd", "--version"),
        );
        versions.insert("iproute2".into(), sys::version_of("ip", "-V"));
        versions.insert("tshark".into(), sys::version_of("tshark", "--version"));
        if let Some(commit) = git_commit() {
            versions.insert("lbspeaker commit".into(), commit);
        }
        RunInfo {
            workload,
            started: jiff::Timestamp::now().to_string(),
            finished: String::new(),
            machine: Machine::here(),
            load_before: sys::load_average(),
            load_after: f64::NAN,
            versions,
            options: opts.clone(),
        }
    }
}

/// The commit of the working tree the bench runs from, when it is a git checkout.
fn git_commit() -> Option<String> {
    let out = std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .ok()?;
    let dirty = std::process::Command::new("git")
        .args(["status", "--porcelain", "--untracked-files=no"])
        .output()
        .ok()
        .is_some_and(|o| !o.stdout.is_empty());
    out.status.success().then(|| {
        let c = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        if dirty { format!("{c} (modified)") } else { c }
    })
}

/// Workload 1, one size, one repeat.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AnnounceRecord {
    /// The DUT (`lbspeaker` or `lbspeaker (LB-IPAM)` …).
    pub dut: String,
    /// Service addresses.
    pub routes: usize,
    /// Repeat number.
    pub repeat: usize,
    /// From the change (manifest written, command started) to the last route in the tor's
    /// kernel, seconds.
    pub announce_s: f64,
    /// From the withdrawal to the last route gone.
    pub withdraw_s: f64,
    /// DUT CPU seconds over the announcement and the withdrawal.
    pub cpu_s: f64,
    /// DUT resident memory with the routes announced, KiB.
    pub rss_kib: u64,
    /// Load average at the start.
    pub load: f64,
}

/// Workload 2, one repeat.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IngestRecord {
    /// The DUT.
    pub dut: String,
    /// Repeat number.
    pub repeat: usize,
    /// Prefixes in the table (IPv4 + IPv6).
    pub prefixes: usize,
    /// The generator's first UPDATE written → the monitor holding the whole table, seconds.
    pub first_to_last_s: f64,
    /// The generator's first UPDATE → the monitor's first UPDATE.
    pub first_out_s: f64,
    /// How long the generator took to get the table into the kernel's socket buffers (the
    /// DUT's reading rate).
    pub send_s: f64,
    /// Prefixes per second through the DUT.
    pub routes_per_s: f64,
    /// UPDATEs the monitor received.
    pub updates_out: u64,
    /// DUT resident memory before the table, KiB.
    pub rss_before_kib: u64,
    /// Peak resident memory (VmHWM) after it, KiB.
    pub hwm_kib: u64,
    /// Resident memory after it.
    pub rss_after_kib: u64,
    /// (peak − before) per prefix, octets.
    pub bytes_per_route: f64,
    /// DUT CPU seconds for the table.
    pub cpu_s: f64,
    /// Load average at the start.
    pub load: f64,
}

/// Workload 3, one repeat.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BestPathRecord {
    /// The DUT.
    pub dut: String,
    /// Repeat number.
    pub repeat: usize,
    /// Prefixes per feed.
    pub prefixes: usize,
    /// Feed A (the worse path) → the monitor holding it all, seconds.
    pub first_feed_s: f64,
    /// Feed B (the better path) → every prefix moved to B at the monitor.
    pub second_feed_s: f64,
    /// B shut (Cease) → every prefix back on A at the monitor.
    pub shut_s: f64,
    /// Resident memory: before, with A, with A and B, after B is gone, KiB.
    pub rss_kib: [u64; 4],
    /// Peak resident memory at the end, KiB.
    pub hwm_kib: u64,
    /// CPU seconds per phase.
    pub cpu_s: [f64; 3],
    /// Load average at the start.
    pub load: f64,
}

/// Workload 4, one trial.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FailureRecord {
    /// The DUT.
    pub dut: String,
    /// Hold time / keepalive.
    pub timers: String,
    /// The case.
    pub case: String,
    /// Trial number.
    pub trial: usize,
    /// Failure → the tor's kernel without the DUT's routes (detection cases), seconds; for
    /// graceful restart: the DUT started again → End-of-RIB on the tor's link.
    pub seconds: f64,
    /// Graceful restart: the DUT started again → its OPEN on the tor's link.
    pub open_s: Option<f64>,
    /// Graceful restart: route deletions the tor's kernel made from the kill to 3 s after
    /// End-of-RIB (0: routes kept).
    pub deleted: Option<usize>,
    /// Load average at the start of the trial.
    pub load: f64,
}

/// Workload 5, one repeat.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChurnRecord {
    /// The DUT.
    pub dut: String,
    /// Repeat number.
    pub repeat: usize,
    /// Flap UPDATEs the generator sent, and over how long.
    pub sent: usize,
    /// Seconds the generator took to send them.
    pub send_s: f64,
    /// Sessions that went down (0 is the goal).
    pub session_flaps: usize,
    /// Prefixes the monitor held once settled, and how many it should.
    pub prefixes_at_end: usize,
    /// What the generator's last state says the monitor should hold.
    pub prefixes_expected: usize,
    /// Longest silence between two messages from the DUT at the monitor, seconds.
    pub max_gap_monitor_s: f64,
    /// Longest time between two KEEPALIVEs from the DUT to the generator, seconds.
    pub max_keepalive_gap_s: f64,
    /// UPDATEs the monitor received during the churn.
    pub updates_out: u64,
    /// Prefix changes (announced + withdrawn) in them.
    pub prefix_changes_out: u64,
    /// Prefixes per UPDATE at the monitor.
    pub prefixes_per_update: f64,
    /// Resident memory with the base table, after the churn, and the peak, KiB.
    pub rss_base_kib: u64,
    /// After the churn.
    pub rss_after_kib: u64,
    /// Peak.
    pub hwm_kib: u64,
    /// The generator's last flap → the monitor's last UPDATE, seconds.
    pub settle_s: f64,
    /// DUT CPU seconds during the churn.
    pub cpu_s: f64,
    /// The CPU saturated by the busy loop, if any.
    pub busy_cpu: Option<usize>,
    /// Load average at the start.
    pub load: f64,
}

/// The records of one run.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "workload", content = "records", rename_all = "kebab-case")]
pub enum Records {
    /// Workload 1.
    Announce(Vec<AnnounceRecord>),
    /// Workload 2.
    Ingest(Vec<IngestRecord>),
    /// Workload 3.
    BestPath(Vec<BestPathRecord>),
    /// Workload 4.
    Failure(Vec<FailureRecord>),
    /// Workload 5.
    Churn(Vec<ChurnRecord>),
}

/// One run's results.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Results {
    /// The circumstances.
    pub info: RunInfo,
    /// The measurements.
    pub records: Records,
}

impl Results {
    /// Writes `DIR/WORKLOAD-STARTED.json` and returns its path.
    pub fn write(&self, dir: &Path) -> Result<PathBuf, BenchError> {
        std::fs::create_dir_all(dir)
            .map_err(BenchError::io(format!("cannot create {}", dir.display())))?;
        let stamp: String = self
            .info
            .started
            .chars()
            .filter(|c| c.is_ascii_digit())
            .take(14)
            .collect();
        let path = dir.join(format!("{}-{stamp}.json", self.info.workload.name()));
        let text = serde_json::to_string_pretty(self)
            .map_err(|e| BenchError::Failed(format!("cannot serialise results: {e}")))?;
        std::fs::write(&path, text)
            .map_err(BenchError::io(format!("cannot write {}", path.display())))?;
        Ok(path)
    }

    /// Reads every `*.json` result file in a directory, oldest first.
    pub fn read_dir(dir: &Path) -> Result<Vec<Results>, BenchError> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(BenchError::io(format!("cannot read {}", dir.display())))?
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        files.sort();
        let mut out = Vec::new();
        for f in files {
            let text = std::fs::read_to_string(&f)
                .map_err(BenchError::io(format!("cannot read {}", f.display())))?;
            let r: Results = serde_json::from_str(&text)
                .map_err(|e| BenchError::Failed(format!("{}: {e}", f.display())))?;
            out.push(r);
        }
        Ok(out)
    }
}

/// Median, minimum and maximum of some values (NaN-free; empty gives NaNs).
pub fn summary(values: &[f64]) -> (f64, f64, f64) {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return (f64::NAN, f64::NAN, f64::NAN);
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let median = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    };
    (median, v[0], v[n - 1])
}

/// A pseudo-random fraction in [0, 1) (xorshift; seed it from the clock, never 0): enough to
/// spread a harness's failures over a timer's cycle.
pub fn fraction(state: &mut u64) -> f64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    (*state >> 11) as f64 / (1u64 << 53) as f64
}

/// `min / median / mean / max` of some durations in seconds with two decimals, the median
/// being the upper one of an even count (the L2 failover harnesses' tables); `-` when empty.
pub fn min_median_mean_max(mut v: Vec<Duration>) -> String {
    if v.is_empty() {
        return "-".into();
    }
    v.sort();
    let f = |d: Duration| format!("{:.2}", d.as_secs_f64());
    let mean = v.iter().sum::<Duration>() / u32::try_from(v.len()).unwrap_or(u32::MAX);
    format!(
        "{} / {} / {} / {}",
        f(v[0]),
        f(v[v.len() / 2]),
        f(mean),
        f(v[v.len() - 1])
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_summarise_as_min_median_mean_max() {
        let s = |ms: &[u64]| {
            min_median_mean_max(ms.iter().map(|m| Duration::from_millis(*m)).collect())
        };
        assert_eq!(s(&[300, 100, 200]), "0.10 / 0.20 / 0.20 / 0.30");
        assert_eq!(s(&[]), "-");
    }

    #[test]
    fn fractions_stay_in_the_unit_interval() {
        let mut st = 12345u64;
        for _ in 0..1000 {
            let f = fraction(&mut st);
            assert!((0.0..1.0).contains(&f), "{f}");
        }
    }

    #[test]
    fn summaries_give_median_min_and_max() {
        assert_eq!(summary(&[3.0, 1.0, 2.0]), (2.0, 1.0, 3.0));
        assert_eq!(summary(&[4.0, 1.0, 2.0, 3.0]), (2.5, 1.0, 4.0));
        assert_eq!(summary(&[f64::NAN, 5.0]), (5.0, 5.0, 5.0));
        assert!(summary(&[]).0.is_nan());
    }
}
