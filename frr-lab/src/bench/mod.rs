//! `frr-lab bench`: lbspeaker against GoBGP, BIRD and FRR, side by side in namespace labs.
//!
//! Each workload builds a lab with the device under test (DUT) between route generators and
//! a monitor, measures time from the monitor's own timestamps (a raw BGP peer stamping every
//! message it reads, or `ip -ts monitor` in the tor's namespace for what its kernel
//! installs), and reads the DUT's peak memory and CPU seconds from `/proc`. Results are JSON
//! files ([`results`]); `frr-lab bench report` turns them into tables and SVG plots
//! ([`report`]).
//!
//! | workload | lab | what is measured |
//! |---|---|---|
//! | `announce` (1) | [`labs::origin`] | the DUT originates 1 … 10,000 /32s: time until the tor's kernel has them all, and for withdrawal |
//! | `ingest` (2) | [`labs::transit`] | a generator sends a full table (1,000,000 IPv4 + 200,000 IPv6), the DUT passes it to the monitor |
//! | `best-path` (3) | [`labs::transit`] | two full feeds (the second better), then the better one shut |
//! | `failure` (4) | [`labs::origin`] | link cut, frozen process, 100 % loss at 9/3 and 3/1 s; graceful restart |
//! | `churn` (5) | [`labs::transit`] | 1,000 prefixes flapping at 1,000 updates/s on 10,000 for 60 s, one core saturated |

pub mod announce;
pub mod churn;
pub mod failure;
pub mod gobgp_api;
pub mod interrupt;
pub mod kernel;
pub mod labs;
pub mod origin;
pub mod peer;
pub mod plot;
pub mod report;
pub mod results;
pub mod speaker;
pub mod sys;
pub mod tables;
pub mod transit;

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::LabError;

/// Why a benchmark could not finish.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BenchError {
    /// Building or driving the lab failed.
    #[error(transparent)]
    Lab(#[from] LabError),
    /// A file, socket or process operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// Something expected did not happen in time.
    #[error("timed out after {:.1} s waiting for {what} ({last})", .after.as_secs_f64())]
    Timeout {
        /// What was awaited.
        what: String,
        /// How long.
        after: Duration,
        /// The last observation.
        last: String,
    },
    /// Anything else, said plainly.
    #[error("{0}")]
    Failed(String),
}

impl BenchError {
    /// For `map_err`: an I/O error with what was being done.
    pub fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> BenchError {
        let context = context.into();
        move |source| BenchError::Io { context, source }
    }
}

/// The device under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Dut {
    /// lbspeaker: `lbspeaker run` where it originates (workloads 1 and 4), its speaker
    /// library as `bench-speaker` where it must be a transit router (2, 3 and 5).
    Lbspeaker,
    /// GoBGP's gobgpd, the engine inside Cilium.
    Gobgpd,
    /// BIRD 2.
    Bird,
    /// FRR's bgpd (with zebra).
    Frr,
}

impl Dut {
    /// Every DUT, in the order the tables show them.
    pub const ALL: [Dut; 4] = [Dut::Lbspeaker, Dut::Gobgpd, Dut::Bird, Dut::Frr];

    /// The name used on the command line and in results.
    pub fn name(self) -> &'static str {
        match self {
            Dut::Lbspeaker => "lbspeaker",
            Dut::Gobgpd => "gobgpd",
            Dut::Bird => "bird",
            Dut::Frr => "frr",
        }
    }

    /// Parses a name.
    pub fn parse(s: &str) -> Option<Dut> {
        Dut::ALL.into_iter().find(|d| d.name() == s)
    }
}

impl fmt::Display for Dut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A workload of issue 11.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Workload {
    /// 1: announcement and withdrawal latency at Kubernetes scale.
    Announce,
    /// 2: full-table ingest through the DUT.
    Ingest,
    /// 3: two full feeds, best-path selection, one feed shut.
    BestPath,
    /// 4: failure detection and graceful restart.
    Failure,
    /// 5: churn under load.
    Churn,
}

impl Workload {
    /// Every workload, in issue order.
    pub const ALL: [Workload; 5] = [
        Workload::Announce,
        Workload::Ingest,
        Workload::BestPath,
        Workload::Failure,
        Workload::Churn,
    ];

    /// Its name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Workload::Announce => "announce",
            Workload::Ingest => "ingest",
            Workload::BestPath => "best-path",
            Workload::Failure => "failure",
            Workload::Churn => "churn",
        }
    }

    /// Parses a name or the workload's number in the issue (`1` … `5`).
    pub fn parse(s: &str) -> Option<Workload> {
        let by_number = s
            .parse::<usize>()
            .ok()
            .and_then(|n| n.checked_sub(1))
            .and_then(|i| Workload::ALL.get(i).copied());
        by_number.or_else(|| Workload::ALL.into_iter().find(|w| w.name() == s))
    }
}

/// Everything a run may be told. Sizes default to the issue's; the smoke test shrinks them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BenchOptions {
    /// The DUTs, in order.
    pub duts: Vec<Dut>,
    /// Repeats (workload 4: trials per case).
    pub repeat: usize,
    /// Where lab directories go.
    pub lab_root: PathBuf,
    /// CPU of the DUT and CPU of everything else (the bench process, the tor, the busy
    /// loop); `None`: no pinning.
    pub pin: Option<(usize, usize)>,
    /// Workload 1: numbers of service addresses.
    pub sizes: Vec<usize>,
    /// Workload 1: lbspeaker's services get their addresses from LB-IPAM instead of carrying
    /// them in their status.
    pub lb_ipam: bool,
    /// Workloads 2 and 3: IPv4 prefixes per feed.
    pub v4: usize,
    /// Workloads 2 and 3: IPv6 prefixes per feed.
    pub v6: usize,
    /// Workloads 2 and 3: attribute sets per family and feed.
    pub sets: usize,
    /// Workload 4: (hold, keepalive) pairs.
    pub timers: Vec<(u16, u16)>,
    /// Workload 4: which cases.
    pub failures: Vec<failure::Case>,
    /// Workload 5: the stable base.
    pub churn_base: usize,
    /// Workload 5: how many of the base flap.
    pub churn_flapping: usize,
    /// Workload 5: updates per second.
    pub churn_rate: u32,
    /// Workload 5: how long.
    pub churn_seconds: u64,
    /// Workload 5: the CPU the busy loop saturates (`None`: no busy loop).
    pub busy_cpu: Option<usize>,
    /// The `lbspeaker` binary (default: beside this program, as frr-lab finds it).
    pub lbspeaker: Option<PathBuf>,
    /// The `bench-speaker` binary (default: beside this program).
    pub bench_speaker: Option<PathBuf>,
    /// Copy every lab node's logs and configurations here when its lab goes away.
    #[serde(default)]
    pub keep_logs: Option<PathBuf>,
}

impl Default for BenchOptions {
    fn default() -> Self {
        BenchOptions {
            duts: Dut::ALL.to_vec(),
            repeat: 3,
            lab_root: PathBuf::from(crate::lab::DEFAULT_ROOT),
            pin: Some((1, 0)),
            sizes: vec![1, 10, 100, 1_000, 10_000],
            lb_ipam: false,
            v4: 1_000_000,
            v6: 200_000,
            sets: 10_000,
            timers: vec![(9, 3), (3, 1)],
            failures: failure::Case::ALL.to_vec(),
            churn_base: 10_000,
            churn_flapping: 1_000,
            churn_rate: 1_000,
            churn_seconds: 60,
            busy_cpu: Some(0),
            lbspeaker: None,
            bench_speaker: None,
            keep_logs: None,
        }
    }
}

impl BenchOptions {
    /// The CPU the DUT is pinned to, if any.
    pub fn dut_cpu(&self) -> Option<usize> {
        self.pin.map(|p| p.0)
    }

    /// The CPU the helpers are pinned to, if any.
    pub fn helper_cpu(&self) -> Option<usize> {
        self.pin.map(|p| p.1)
    }
}

/// Progress lines on standard error (the results go to files).
pub fn progress(line: impl AsRef<str>) {
    eprintln!("[{:>8.1}] {}", sys::unix_now() % 100_000.0, line.as_ref());
}

/// Runs a workload for every DUT of the options and returns the results.
pub fn run(workload: Workload, opts: &BenchOptions) -> Result<results::Results, BenchError> {
    if let Some(cpu) = opts.helper_cpu() {
        sys::pin_self(cpu)?;
    }
    let info = results::RunInfo::collect(workload, opts);
    progress(format!(
        "{}: DUTs {}, {} repeats, load average {:.2}",
        workload.name(),
        opts.duts
            .iter()
            .map(|d| d.name())
            .collect::<Vec<_>>()
            .join(", "),
        opts.repeat,
        info.load_before
    ));
    let records = match workload {
        Workload::Announce => results::Records::Announce(announce::run(opts)?),
        Workload::Ingest => results::Records::Ingest(transit::run_ingest(opts)?),
        Workload::BestPath => results::Records::BestPath(transit::run_best_path(opts)?),
        Workload::Failure => results::Records::Failure(failure::run(opts)?),
        Workload::Churn => results::Records::Churn(churn::run(opts)?),
    };
    let mut info = info;
    info.load_after = sys::load_average();
    info.finished = jiff::Timestamp::now().to_string();
    Ok(results::Results { info, records })
}
