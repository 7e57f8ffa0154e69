//! What the benchmarks read from the system: a process's memory and CPU time from `/proc`,
//! CPU pinning, the versions of every program measured, the machine and its load, and the
//! bounded busy loop that saturates a core.

use std::process::{Child, Command};
use std::time::{Duration, SystemTime};

use nix::sched::{CpuSet, sched_setaffinity};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use super::BenchError;

/// Wall-clock time as Unix seconds: the clock `ip -ts monitor` stamps its lines with, so the
/// two can be compared.
pub fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Memory and CPU time of a set of processes (a DUT may be several: FRR's bgpd and zebra).
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq)]
pub struct ProcSample {
    /// Resident memory now, KiB (`VmRSS`).
    pub rss_kib: u64,
    /// Peak resident memory since the process started, KiB (`VmHWM`).
    pub hwm_kib: u64,
    /// User plus system CPU time since the process started, seconds.
    pub cpu_s: f64,
}

impl ProcSample {
    /// The sum over processes; processes that are gone count nothing.
    pub fn of(pids: &[u32]) -> ProcSample {
        let mut s = ProcSample::default();
        for &pid in pids {
            s.rss_kib += status_kib(pid, "VmRSS:").unwrap_or(0);
            s.hwm_kib += status_kib(pid, "VmHWM:").unwrap_or(0);
            s.cpu_s += cpu_seconds(pid).unwrap_or(0.0);
        }
        s
    }
}

fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// utime + stime of `/proc/PID/stat`, in seconds.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_cpu_ticks(&stat).map(|t| t as f64 / clock_ticks())
}

/// Fields 14 and 15 (utime, stime) of a `stat` line; the command name may hold spaces and
/// parentheses, so fields are counted after its last `)`.
fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let (_, rest) = stat.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state): utime is field 14, so index 11.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

fn clock_ticks() -> f64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .map_or(100.0, |t| t as f64)
}

/// Pins every thread of a process to one CPU (threads created later inherit it).
pub fn pin_process(pid: u32, cpu: usize) -> Result<(), BenchError> {
    let mut set = CpuSet::new();
    set.set(cpu)
        .map_err(|e| BenchError::Failed(format!("CPU {cpu}: {e}")))?;
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task"))
        .map_err(BenchError::io(format!("cannot list the threads of {pid}")))?;
    for t in tasks.flatten() {
        if let Some(tid) = t.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) {
            // A thread may end meanwhile; that is fine.
            let _ = sched_setaffinity(Pid::from_raw(tid), &set);
        }
    }
    Ok(())
}

/// Pins the calling process (the thread calling and every thread it starts afterwards).
pub fn pin_self(cpu: usize) -> Result<(), BenchError> {
    let mut set = CpuSet::new();
    set.set(cpu)
        .map_err(|e| BenchError::Failed(format!("CPU {cpu}: {e}")))?;
    sched_setaffinity(Pid::from_raw(0), &set)
        .map_err(|e| BenchError::Failed(format!("cannot pin to CPU {cpu}: {e}")))
}

/// The number of CPUs online (not those this process may use: it pins itself first).
pub fn cpu_count() -> usize {
    std::fs::read_to_string("/proc/cpuinfo")
        .map(|s| s.lines().filter(|l| l.starts_with("processor")).count())
        .unwrap_or(0)
        .max(1)
}

/// The 1-minute load average.
pub fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(f64::NAN)
}

/// The machine a run was made on.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Machine {
    /// `model name` of `/proc/cpuinfo`.
    pub cpu: String,
    /// CPUs online.
    pub cpus: usize,
    /// `MemTotal`, GiB.
    pub memory_gib: f64,
    /// `uname -r`.
    pub kernel: String,
}

impl Machine {
    /// This machine.
    pub fn here() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_owned())
            .unwrap_or_default();
        let memory_gib = status_like("/proc/meminfo", "MemTotal:").unwrap_or(0) as f64 / 1048576.0;
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim()
            .to_owned();
        Machine {
            cpu,
            cpus: cpu_count(),
            memory_gib,
            kernel,
        }
    }
}

fn status_like(path: &str, field: &str) -> Option<u64> {
    let s = std::fs::read_to_string(path).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// The first line a program prints for its version flag (stdout or stderr), or why not.
pub fn version_of(program: &str, flag: &str) -> String {
    match Command::new(program).arg(flag).output() {
        Ok(out) => {
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            text.lines()
                .map(str::trim)
                .find(|l| !l.is_empty())
                .unwrap_or("(no output)")
                .to_owned()
        }
        Err(e) => format!("not available: {e}"),
    }
}

/// A busy loop on one CPU in a child process (`frr-lab bench busy`), ended by its pid when
/// dropped, and bounded by its own deadline should this process die first.
#[derive(Debug)]
pub struct BusyLoop {
    child: Child,
}

impl BusyLoop {
    /// Starts `frr-lab bench busy --cpu CPU --seconds LIMIT` from this very executable.
    pub fn start(cpu: usize, limit: Duration) -> Result<BusyLoop, BenchError> {
        let exe = std::env::current_exe().map_err(BenchError::io("cannot find frr-lab itself"))?;
        let child = Command::new(exe)
            .args([
                "bench",
                "busy",
                "--cpu",
                &cpu.to_string(),
                "--seconds",
                &limit.as_secs().max(1).to_string(),
            ])
            .spawn()
            .map_err(BenchError::io("cannot start the busy loop"))?;
        Ok(BusyLoop { child })
    }

    /// Its pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for BusyLoop {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
        let _ = self.child.wait();
    }
}

/// The busy loop itself: pins this process to `cpu` and spins until `limit` has passed.
pub fn spin(cpu: usize, limit: Duration) -> Result<(), BenchError> {
    pin_self(cpu)?;
    let end = std::time::Instant::now() + limit;
    let mut x: u64 = 1;
    while std::time::Instant::now() < end {
        for _ in 0..100_000 {
            x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
    }
    std::hint::black_box(x);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_ticks_are_read_after_the_command_name_even_with_spaces_in_it() {
        let stat = "1234 (bgpd (x) y) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 3 0 9 0";
        assert_eq!(parse_cpu_ticks(stat), Some(300));
        assert_eq!(parse_cpu_ticks("garbage"), None);
    }

    #[test]
    fn this_process_has_memory_and_cpu_time() {
        let s = ProcSample::of(&[std::process::id()]);
        assert!(s.rss_kib > 0 && s.hwm_kib >= s.rss_kib, "{s:?}");
        assert!(s.cpu_s >= 0.0);
        assert_eq!(ProcSample::of(&[u32::MAX]), ProcSample::default());
    }

    #[test]
    fn the_machine_is_described() {
        let m = Machine::here();
        assert!(
            m.cpus >= 1 && m.memory_gib > 0.0 && !m.kernel.is_empty(),
            "{m:?}"
        );
    }
}
