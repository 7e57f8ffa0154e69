//! Kernel events with their times: `ip -ts -o monitor route|link` run in a lab namespace,
//! its lines in a file, read incrementally. The tor's kernel installing or deleting a route
//! is the end of workloads 1 and 4; a switch port going down is the start of a link cut.
//!
//! A line looks like `[2026-12-01T19:23:51.308530] Deleted 10.96.0.1 nhid 24 via ...`;
//! the stamp is the local wall-clock time `ip` received the netlink message.

use std::collections::HashSet;
use std::io::{Read as _, Seek as _, SeekFrom};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::BenchError;
use crate::Lab;

/// One route event.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteEvent {
    /// When (Unix seconds).
    pub at: f64,
    /// A deletion (else an addition or a change).
    pub deleted: bool,
    /// The destination as a prefix (`10.96.0.1/32`).
    pub dst: String,
}

/// Parses `[2026-12-01T19:23:51.308530]` (local time) into Unix seconds.
pub fn parse_stamp(line: &str) -> Option<(f64, &str)> {
    let rest = line.strip_prefix('[')?;
    let (stamp, rest) = rest.split_once(']')?;
    let dt: jiff::civil::DateTime = stamp.parse().ok()?;
    let ts = dt.to_zoned(jiff::tz::TimeZone::system()).ok()?.timestamp();
    Some((ts.as_microsecond() as f64 / 1e6, rest.trim_start()))
}

/// Parses one `ip -ts -o monitor route` line.
pub fn parse_route_line(line: &str) -> Option<RouteEvent> {
    let (at, rest) = parse_stamp(line)?;
    let (deleted, rest) = match rest.strip_prefix("Deleted ") {
        Some(r) => (true, r),
        None => (false, rest),
    };
    let mut words = rest.split_whitespace();
    let mut dst = words.next()?;
    // Route types (`unicast`, `local`, `broadcast`...) come before the destination.
    if matches!(
        dst,
        "local" | "broadcast" | "unicast" | "multicast" | "anycast"
    ) {
        dst = words.next()?;
    }
    if dst == "default" || !dst.chars().next()?.is_ascii_hexdigit() {
        return None;
    }
    let dst = if dst.contains('/') {
        dst.to_owned()
    } else if dst.contains(':') {
        format!("{dst}/128")
    } else {
        format!("{dst}/32")
    };
    Some(RouteEvent { at, deleted, dst })
}

/// A running `ip monitor` and the file its lines go to.
#[derive(Debug)]
pub struct Monitor {
    file: PathBuf,
    offset: u64,
    partial: String,
    lines: Vec<String>,
}

impl Monitor {
    /// Starts `ip -ts -o monitor OBJECT` in a node (the lab stops it on teardown).
    pub fn start(lab: &mut Lab, node: &str, object: &str) -> Result<Monitor, BenchError> {
        let name = format!("monitor-{object}");
        let file = lab.node_dir(node)?.join(format!("{name}.log"));
        let _ = std::fs::remove_file(&file);
        lab.spawn(node, &name, "ip", &["-ts", "-o", "monitor", object])?;
        // Let it subscribe before anything it must see happens.
        std::thread::sleep(Duration::from_millis(150));
        Ok(Monitor {
            file,
            offset: 0,
            partial: String::new(),
            lines: Vec::new(),
        })
    }

    /// Reads what was added to the file since the last call.
    fn poll(&mut self) -> Result<(), BenchError> {
        let mut f = std::fs::File::open(&self.file).map_err(BenchError::io(format!(
            "cannot open {}",
            self.file.display()
        )))?;
        f.seek(SeekFrom::Start(self.offset))
            .map_err(BenchError::io("seek"))?;
        let mut buf = String::new();
        let n = f
            .read_to_string(&mut buf)
            .map_err(BenchError::io("read a monitor log"))?;
        self.offset += n as u64;
        self.partial.push_str(&buf);
        while let Some(i) = self.partial.find('\n') {
            let line: String = self.partial.drain(..=i).collect();
            self.lines.push(line.trim_end().to_owned());
        }
        Ok(())
    }

    /// Every line read so far.
    pub fn lines(&mut self) -> Result<&[String], BenchError> {
        self.poll()?;
        Ok(&self.lines)
    }

    /// Route events read so far, from `since` on.
    pub fn route_events(&mut self, since: f64) -> Result<Vec<RouteEvent>, BenchError> {
        self.poll()?;
        Ok(self
            .lines
            .iter()
            .filter_map(|l| parse_route_line(l))
            .filter(|e| e.at >= since)
            .collect())
    }

    /// Waits until `count` distinct prefixes that satisfy `wanted` were added (or, with
    /// `deleted`, deleted) at or after `since`; returns the time of the last of them and the
    /// prefixes. Reads the file every 20 ms; the times are the monitor's.
    pub fn wait_routes(
        &mut self,
        wanted: impl Fn(&str) -> bool,
        count: usize,
        deleted: bool,
        since: f64,
        timeout: Duration,
    ) -> Result<(f64, HashSet<String>), BenchError> {
        let deadline = Instant::now() + timeout;
        loop {
            let mut seen: HashSet<String> = HashSet::new();
            let mut last = f64::NAN;
            self.poll()?;
            for e in self.lines.iter().filter_map(|l| parse_route_line(l)) {
                if e.at >= since && e.deleted == deleted && wanted(&e.dst) {
                    last = if last.is_nan() { e.at } else { last.max(e.at) };
                    seen.insert(e.dst);
                }
            }
            if seen.len() >= count {
                return Ok((last, seen));
            }
            if Instant::now() >= deadline {
                return Err(BenchError::Timeout {
                    what: format!(
                        "{count} routes to be {} in the kernel",
                        if deleted { "deleted" } else { "added" }
                    ),
                    after: timeout,
                    last: format!("{} of them seen", seen.len()),
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Forgets the lines read so far (they are not needed again), keeping the file offset.
    pub fn forget(&mut self) {
        self.lines.clear();
    }

    /// The first line at or after `since` that satisfies `f`, as its time.
    pub fn first(
        &mut self,
        since: f64,
        f: impl Fn(&str) -> bool,
    ) -> Result<Option<f64>, BenchError> {
        self.poll()?;
        Ok(self
            .lines
            .iter()
            .filter_map(|l| parse_stamp(l).map(|(t, rest)| (t, rest.to_owned())))
            .find(|(t, rest)| *t >= since && f(rest))
            .map(|(t, _)| t))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_lines_give_time_kind_and_prefix() {
        let e = parse_route_line(
            "[2026-12-01T19:23:51.308530] 10.96.0.1 nhid 24 via 10.0.0.2 dev eth1 proto bgp metric 20",
        )
        .unwrap();
        assert!(!e.deleted);
        assert_eq!(e.dst, "10.96.0.1/32");
        let d = parse_route_line(
            "[2026-12-01T19:23:51.400000] Deleted 20.0.1.0/24 nhid 24 via 10.0.0.2 dev eth1 proto bgp metric 20",
        )
        .unwrap();
        assert!(d.deleted);
        assert_eq!(d.dst, "20.0.1.0/24");
        assert!((d.at - e.at - 0.09147).abs() < 1e-6, "{} {}", d.at, e.at);
        let l = parse_route_line(
            "[2026-12-01T19:23:51.400000] local 10.0.0.1 dev eth1 table local proto kernel",
        )
        .unwrap();
        assert_eq!(l.dst, "10.0.0.1/32");
        assert!(parse_route_line("no stamp here").is_none());
        assert!(parse_route_line("[2026-12-01T19:23:51.4] default via 10.0.0.1").is_none());
    }
}
