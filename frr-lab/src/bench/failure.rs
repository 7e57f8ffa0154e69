//! Workload 4, failure detection, in the origin lab with the DUT originating ten service
//! /32s. With hold/keepalive 9/3 and 3/1 s, the detection cases without graceful restart
//! (with it the tor keeps the routes as stale for the restart time after its hold timer
//! fires) and the restart case in a lab of its own with graceful restart (15 s) on both sides:
//!
//! - **link cut**: the DUT's switch port goes down (`ip link set dev dut down` in the
//!   switch's namespace; the tor's own interface stays up, so only its hold timer can tell);
//!   time from the port going down (`ip -ts monitor link` in the switch) to the last of the
//!   routes deleted from the tor's kernel (`ip -ts monitor route` in the tor);
//! - **freeze**: SIGSTOP to the DUT's BGP process (FRR: bgpd); from the signal;
//! - **loss**: 100 % loss on the DUT's link, both ways (an nftables drop of everything in and
//!   out of its interface: this kernel has no netem); from the rule being in place;
//! - **graceful restart**: SIGKILL of the DUT's BGP process, a second's pause, and its start
//!   again as each restarts gracefully (lbspeaker: `lbspeaker run`, which sets the R bit and
//!   holds End-of-RIB until its first reconcile; gobgpd `-r` and its routes re-added through
//!   its API; `bird -R`; FRR's bgpd); captured on the tor's link: the time from the start to
//!   the DUT's OPEN and to its End-of-RIB, and whether the tor's kernel deleted any route.
//!
//! After each trial the failure is undone and the next waits for the session and the routes.

use std::collections::HashSet;
use std::time::Duration;

use ipnet::IpNet;
use nix::sys::signal::Signal;
use serde::{Deserialize, Serialize};

use super::announce::wait_established;
use super::kernel::Monitor;
use super::labs::{self, BenchLab, ORIGIN_DUT, SessionTimers};
use super::origin::set_routes;
use super::results::{FailureRecord, fraction};
use super::sys::{load_average, unix_now};
use super::tables::service_prefix;
use super::{BenchError, BenchOptions, Dut, progress};
use crate::{Lab, daemons};

/// Routes the DUT originates in this workload.
const ROUTES: usize = 10;
/// Graceful restart time on both sides.
const RESTART_TIME: u16 = 15;

/// A failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Case {
    /// The DUT's switch port down.
    LinkCut,
    /// SIGSTOP.
    Freeze,
    /// Every packet dropped.
    Loss,
    /// SIGKILL and a graceful restart.
    GracefulRestart,
}

impl Case {
    /// All cases, in the order they run.
    pub const ALL: [Case; 4] = [
        Case::LinkCut,
        Case::Freeze,
        Case::Loss,
        Case::GracefulRestart,
    ];

    /// Its name.
    pub fn name(self) -> &'static str {
        match self {
            Case::LinkCut => "link-cut",
            Case::Freeze => "freeze",
            Case::Loss => "loss",
            Case::GracefulRestart => "graceful-restart",
        }
    }

    /// Parses a name.
    pub fn parse(s: &str) -> Option<Case> {
        Case::ALL.into_iter().find(|c| c.name() == s)
    }
}

/// Runs workload 4 for every DUT, timer pair and case.
pub fn run(opts: &BenchOptions) -> Result<Vec<FailureRecord>, BenchError> {
    if opts.duts.contains(&Dut::Lbspeaker) {
        labs::require_lbspeaker(opts)?;
    }
    let mut rng = (unix_now() * 1e6) as u64 | 1;
    let mut out = Vec::new();
    for &dut in &opts.duts {
        for &timers in &opts.timers {
            out.extend(run_timers(opts, dut, timers, &mut rng)?);
        }
    }
    Ok(out)
}

struct Trial<'a> {
    b: BenchLab,
    routes: Monitor,
    links: Monitor,
    want: HashSet<String>,
    prefixes: Vec<IpNet>,
    opts: &'a BenchOptions,
    hold: u16,
}

fn run_timers(
    opts: &BenchOptions,
    dut: Dut,
    (hold, keepalive): (u16, u16),
    rng: &mut u64,
) -> Result<Vec<FailureRecord>, BenchError> {
    let timers = format!("{hold}/{keepalive}");
    let mut out = Vec::new();
    // Detection runs without graceful restart: with it, the tor would keep the routes as
    // stale for the restart time after its hold timer fired, and the figure would be the
    // restart time. The restart case gets a lab of its own with graceful restart on.
    let (restart, detection): (Vec<Case>, Vec<Case>) = opts
        .failures
        .iter()
        .partition(|&&c| c == Case::GracefulRestart);
    for (cases, graceful_restart) in [(detection, None), (restart, Some(RESTART_TIME))] {
        if cases.is_empty() {
            continue;
        }
        let t = SessionTimers {
            hold_keepalive: Some((hold, keepalive)),
            graceful_restart,
        };
        let mut tr = Trial::start(opts, dut, &t)?;
        for case in cases {
            for trial in 1..=opts.repeat {
                // A random point of the keepalive cycle.
                std::thread::sleep(Duration::from_secs_f64(
                    0.5 + fraction(rng) * f64::from(keepalive),
                ));
                let load = load_average();
                let r = match case {
                    Case::GracefulRestart => tr.graceful_restart()?,
                    _ => (tr.detect(case)?, None, None),
                };
                progress(format!(
                    "{dut} {timers} {} trial {trial}: {:.3} s{}",
                    case.name(),
                    r.0,
                    match (r.1, r.2) {
                        (Some(o), Some(d)) => {
                            format!(" (OPEN after {o:.3} s, {d} routes deleted)")
                        }
                        _ => String::new(),
                    }
                ));
                out.push(FailureRecord {
                    dut: dut.name().to_owned(),
                    timers: timers.clone(),
                    case: case.name().to_owned(),
                    trial,
                    seconds: r.0,
                    open_s: r.1,
                    deleted: r.2,
                    load,
                });
            }
        }
    }
    Ok(out)
}

/// How a failure is undone.
type Undo = Box<dyn Fn(&mut Lab) -> Result<(), BenchError>>;

const NFT_DROP: &str = "add table inet benchloss; \
    add chain inet benchloss in { type filter hook input priority -300; policy accept; }; \
    add rule inet benchloss in iifname \"eth1\" drop; \
    add chain inet benchloss out { type filter hook output priority -300; policy accept; }; \
    add rule inet benchloss out oifname \"eth1\" drop";

impl<'a> Trial<'a> {
    /// The origin lab with the DUT originating [`ROUTES`] routes, the monitors running,
    /// every route in the tor's kernel.
    fn start(opts: &'a BenchOptions, dut: Dut, t: &SessionTimers) -> Result<Self, BenchError> {
        let prefixes: Vec<IpNet> = (0..ROUTES).map(service_prefix).collect();
        let configured = if dut == Dut::Lbspeaker {
            Vec::new()
        } else {
            prefixes.clone()
        };
        let mut b = labs::origin(opts, dut, t, configured)?;
        let routes = Monitor::start(&mut b.lab, "tor", "route")?;
        let links = Monitor::start(&mut b.lab, "sw1", "link")?;
        if dut == Dut::Lbspeaker {
            set_routes(&b, opts, &prefixes, &[])?;
        }
        let mut tr = Trial {
            b,
            routes,
            links,
            want: prefixes.iter().map(ToString::to_string).collect(),
            prefixes,
            opts,
            hold: t.hold_keepalive.map_or(90, |h| h.0),
        };
        tr.recover()?;
        Ok(tr)
    }
}

impl Trial<'_> {
    fn lab(&self) -> &Lab {
        &self.b.lab
    }

    /// Session back and every route in the tor's kernel.
    fn recover(&mut self) -> Result<(), BenchError> {
        wait_established(self.lab(), Duration::from_secs(120))?;
        let want = self.want.clone();
        let (lab, prefixes) = (&self.b.lab, &self.prefixes);
        Lab::wait_for(
            "the DUT's routes in the tor's kernel",
            Duration::from_secs(120),
            |last| {
                let routes = lab.kernel_routes("tor", false, Some("bgp"))?;
                let have: HashSet<String> = routes
                    .iter()
                    .map(|r| {
                        if r.dst.contains('/') {
                            r.dst.clone()
                        } else {
                            format!("{}/32", r.dst)
                        }
                    })
                    .filter(|d| want.contains(d))
                    .collect();
                *last = Some(format!("{} of {}", have.len(), prefixes.len()));
                Ok((have.len() == want.len()).then_some(()))
            },
        )?;
        Ok(())
    }

    fn wait_deleted(&mut self, since: f64) -> Result<f64, BenchError> {
        let want = self.want.clone();
        let timeout = Duration::from_secs(u64::from(self.hold) * 3 + 30);
        let (at, _) =
            self.routes
                .wait_routes(|d| want.contains(d), want.len(), true, since, timeout)?;
        Ok(at)
    }

    fn detect(&mut self, case: Case) -> Result<f64, BenchError> {
        self.routes.forget();
        self.links.forget();
        let pid = self.b.bgp_pid();
        let (t0, undo): (f64, Undo) = match case {
            Case::LinkCut => {
                let before = unix_now();
                self.lab()
                    .exec_ok("sw1", "ip", &["link", "set", "dev", "dut", "down"])?;
                let at = self
                    .links
                    .first(before - 0.01, |l| {
                        l.contains(": dut@") && l.contains("state DOWN")
                    })?
                    .unwrap_or(before);
                (
                    at,
                    Box::new(|lab: &mut Lab| {
                        lab.exec_ok("sw1", "ip", &["link", "set", "dev", "dut", "up"])?;
                        Ok(())
                    }),
                )
            }
            Case::Freeze => {
                let pid = pid.ok_or_else(|| BenchError::Failed("no DUT process".into()))?;
                let at = unix_now();
                self.b.lab.signal(pid, Signal::SIGSTOP)?;
                (
                    at,
                    Box::new(move |lab: &mut Lab| {
                        lab.signal(pid, Signal::SIGCONT)?;
                        Ok(())
                    }),
                )
            }
            Case::Loss => {
                self.lab().exec_ok("dut", "nft", &[NFT_DROP])?;
                (
                    unix_now(),
                    Box::new(|lab: &mut Lab| {
                        lab.exec_ok("dut", "nft", &["delete table inet benchloss"])?;
                        Ok(())
                    }),
                )
            }
            Case::GracefulRestart => {
                return Err(BenchError::Failed("not a detection case".into()));
            }
        };
        let result = self.wait_deleted(t0);
        undo(&mut self.b.lab)?;
        let gone = result?;
        self.recover()?;
        Ok(gone - t0)
    }

    /// Kill, restart, and read the tor's capture: (End-of-RIB, OPEN, routes deleted).
    fn graceful_restart(&mut self) -> Result<(f64, Option<f64>, Option<usize>), BenchError> {
        self.routes.forget();
        let pcap = self.b.lab.node_dir("tor")?.join("gr.pcap");
        let _ = std::fs::remove_file(&pcap);
        let p = pcap.to_string_lossy().into_owned();
        let dump = self.b.lab.spawn(
            "tor",
            "tcpdump",
            "tcpdump",
            &[
                "-i", "eth1", "-U", "-s", "0", "-w", &p, "tcp", "port", "179",
            ],
        )?;
        std::thread::sleep(Duration::from_millis(500));
        let pid = self
            .b
            .bgp_pid()
            .ok_or_else(|| BenchError::Failed("no DUT process".into()))?;
        let killed = unix_now();
        self.b.lab.signal(pid, Signal::SIGKILL)?;
        let _ = self.b.lab.is_running(pid);
        std::thread::sleep(Duration::from_secs(1));
        let started = unix_now();
        self.restart()?;
        wait_established(self.lab(), Duration::from_secs(120))?;
        // End-of-RIB follows the table; give it time, then read the capture.
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        let (eor, open) = loop {
            std::thread::sleep(Duration::from_millis(500));
            let (eor, open) = capture_times(&p, started)?;
            if eor.is_some() || std::time::Instant::now() >= deadline {
                break (eor, open);
            }
        };
        std::thread::sleep(Duration::from_secs(3));
        self.b.lab.stop_process(dump, Duration::from_secs(2))?;
        let _ = std::fs::remove_file(&pcap);
        let want = self.want.clone();
        let deleted = self
            .routes
            .route_events(killed)?
            .iter()
            .filter(|e| e.deleted && want.contains(&e.dst))
            .count();
        self.recover()?;
        let eor = eor.ok_or_else(|| {
            BenchError::Failed(format!(
                "{}: no End-of-RIB from the DUT on the tor's link within 30 s of Established",
                self.b.dut
            ))
        })?;
        Ok((eor - started, open.map(|o| o - started), Some(deleted)))
    }

    fn restart(&mut self) -> Result<(), BenchError> {
        let dir = self.b.lab.node_dir("dut")?;
        match self.b.dut {
            Dut::Lbspeaker => {
                daemons::restart(&mut self.b.lab, "dut")?;
            }
            Dut::Gobgpd => {
                let conf = dir.join("gobgpd.toml").to_string_lossy().into_owned();
                let api = format!("127.0.0.1:{}", daemons::GOBGP_API_PORT);
                let (program, args) = daemons::pinned(
                    &self.b.lab,
                    "dut",
                    "gobgpd",
                    &[
                        "-f",
                        &conf,
                        "-p",
                        "--api-hosts",
                        &api,
                        "--pprof-disable",
                        "-r",
                    ],
                );
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                self.b.lab.spawn("dut", "gobgpd", &program, &args)?;
                let lab = &self.b.lab;
                Lab::wait_for("gobgpd's API", Duration::from_secs(15), |_| {
                    Ok(daemons::gobgp(lab, "dut", &["global"])
                        .is_ok()
                        .then_some(()))
                })?;
                set_routes(&self.b, self.opts, &self.prefixes, &[])?;
            }
            Dut::Bird => {
                let conf = dir.join("bird.conf").to_string_lossy().into_owned();
                let ctl = dir.join("bird.ctl").to_string_lossy().into_owned();
                let (program, args) = daemons::pinned(
                    &self.b.lab,
                    "dut",
                    "bird",
                    &["-f", "-R", "-c", &conf, "-s", &ctl],
                );
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                self.b.lab.spawn("dut", "bird", &program, &args)?;
            }
            Dut::Frr => {
                daemons::start_frr_daemon(&mut self.b.lab, "dut", &dir, "bgpd")?;
            }
        }
        Ok(())
    }
}

/// The DUT's first End-of-RIB (IPv4: an UPDATE of 23 octets) and first OPEN after `since`
/// in a capture on the tor's link, as tshark reassembles the TCP stream.
fn capture_times(pcap: &str, since: f64) -> Result<(Option<f64>, Option<f64>), BenchError> {
    let filter = format!("ip.src == {ORIGIN_DUT} && bgp");
    let out = std::process::Command::new("tshark")
        .args([
            "-r",
            pcap,
            "-Y",
            &filter,
            "-T",
            "fields",
            "-e",
            "frame.time_epoch",
            "-e",
            "bgp.type",
            "-e",
            "bgp.length",
        ])
        .output()
        .map_err(BenchError::io("cannot run tshark"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let (mut eor, mut open) = (None, None);
    for line in text.lines() {
        let mut f = line.split('\t');
        let (Some(t), Some(types), Some(lens)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        let Ok(t) = t.parse::<f64>() else { continue };
        if t < since {
            continue;
        }
        for (ty, len) in types.split(',').zip(lens.split(',')) {
            if ty == "1" && open.is_none() {
                open = Some(t);
            }
            if ty == "2" && len == "23" && eor.is_none() {
                eor = Some(t);
            }
        }
    }
    Ok((eor, open))
}
