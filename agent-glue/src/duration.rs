//! Durations as Go, Cilium and MetalLB write them, for the command line and for converted
//! manifests: one parser.

use std::time::Duration;

/// A duration as Go's `time.ParseDuration` reads it (`15s`, `500ms`, `1m30s`, `1.5s`, `0`):
/// what MetalLB manifests and Cilium's flags hold.
pub fn parse_go(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    if t.is_empty() {
        return Err("empty duration".into());
    }
    if t == "0" {
        return Ok(Duration::ZERO);
    }
    let mut total = 0f64;
    let mut rest = t;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (num, tail) = rest.split_at(num_len);
        let value: f64 = num
            .parse()
            .map_err(|_| format!("{text:?} is not a duration (e.g. 15s, 500ms, 1m30s)"))?;
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, next) = tail.split_at(unit_len);
        let scale = match unit {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "" => {
                return Err(format!(
                    "{text:?}: a number needs a unit (ns, us, ms, s, m, h)"
                ));
            }
            _ => {
                return Err(format!(
                    "{text:?}: unknown unit {unit:?} (ns, us, ms, s, m, h)"
                ));
            }
        };
        total += value * scale;
        rest = next;
    }
    Duration::try_from_secs_f64(total).map_err(|e| format!("{text:?}: {e}"))
}

/// A duration on our command line: Go's syntax, or a plain number of seconds (`2`, `1.5`).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    match text.trim().parse::<f64>() {
        Ok(secs) => Duration::try_from_secs_f64(secs).map_err(|e| format!("{text:?}: {e}")),
        Err(_) => parse_go(text),
    }
}

/// An interval for a timer: a duration (`30s`, `2m`) of at least one second.
pub fn parse_interval(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d < Duration::from_secs(1) {
        return Err(format!("{s:?}: the interval must be at least 1s"));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_read_as_go_writes_them() {
        let ok =
            |t: &str, ms: u64| assert_eq!(parse_duration(t), Ok(Duration::from_millis(ms)), "{t}");
        ok("15s", 15_000);
        ok("500ms", 500);
        ok("0.5s", 500);
        ok("1m30s", 90_000);
        ok("2", 2_000);
        ok("1.5", 1_500);
        ok("1h", 3_600_000);
        for bad in ["", "s", "5x", "-1s", "1..2s", "ms5"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn go_syntax_needs_units_except_for_zero() {
        assert_eq!(parse_go("0"), Ok(Duration::ZERO));
        assert_eq!(parse_go("1m30s"), Ok(Duration::from_secs(90)));
        for bad in ["90", "", "s", "10x", "1m-3s"] {
            assert!(parse_go(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn an_interval_is_at_least_a_second() {
        assert_eq!(parse_interval("30s"), Ok(Duration::from_secs(30)));
        assert!(parse_interval("0").is_err());
        assert!(parse_interval("500ms").is_err());
    }
}
