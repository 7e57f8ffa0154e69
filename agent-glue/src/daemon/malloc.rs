//! One glibc malloc arena for the long-running commands.
//!
//! glibc gives a thread that allocates while another holds an arena's lock an arena of its
//! own (up to eight per core) and keeps what is freed in it for that arena's later use. The
//! daemon parses manifests on tokio's blocking threads and reconciles on its workers, so
//! under churn its resident memory climbed 20-25 MiB (about 30 %) above its baseline and
//! stayed there, with nothing leaked (docs/RELIABILITY.md, the soak). With one arena it comes
//! back to within a few per cent. glibc reads the limit only at start-up, from the
//! `GLIBC_TUNABLES` environment variable; setting it from inside (`mallopt`) would take
//! `unsafe`, so the process executes itself again once with the variable set: the same
//! program, arguments and PID. A `glibc.malloc.arena_max` the user set is left as it is.

use std::ffi::OsString;
use std::os::unix::process::CommandExt as _;

/// glibc's tunable for the number of arenas.
pub const ARENA_MAX: &str = "glibc.malloc.arena_max";

/// The `GLIBC_TUNABLES` value to run with, or `None` when `current` already limits the
/// arenas (set by the user, or by the first start).
pub fn tunables(current: Option<&str>) -> Option<String> {
    let current = current.unwrap_or("");
    if current
        .split(':')
        .any(|t| t.split_once('=').is_some_and(|(k, _)| k == ARENA_MAX))
    {
        return None;
    }
    Some(if current.is_empty() {
        format!("{ARENA_MAX}=1")
    } else {
        format!("{current}:{ARENA_MAX}=1")
    })
}

/// Executes this program again with one malloc arena unless the environment already says
/// how many. Returns only when it did not: `None` when nothing was needed, else why the
/// exec failed (the caller goes on with glibc's default).
pub fn limit_arenas() -> Option<std::io::Error> {
    let current = std::env::var("GLIBC_TUNABLES").ok();
    let value = tunables(current.as_deref())?;
    let mut args = std::env::args_os();
    let arg0 = args.next().unwrap_or_else(|| OsString::from("lbspeaker"));
    let err = std::process::Command::new("/proc/self/exe")
        .arg0(arg0)
        .args(args)
        .env("GLIBC_TUNABLES", value)
        .exec();
    Some(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_arena_limit_is_added_once_and_a_users_own_is_kept() {
        assert_eq!(tunables(None).as_deref(), Some("glibc.malloc.arena_max=1"));
        assert_eq!(
            tunables(Some("")).as_deref(),
            Some("glibc.malloc.arena_max=1")
        );
        assert_eq!(
            tunables(Some("glibc.malloc.tcache_count=0")).as_deref(),
            Some("glibc.malloc.tcache_count=0:glibc.malloc.arena_max=1")
        );
        assert_eq!(tunables(Some("glibc.malloc.arena_max=1")), None);
        assert_eq!(
            tunables(Some("glibc.malloc.tcache_count=0:glibc.malloc.arena_max=4")),
            None
        );
        // A tunable whose name only starts alike is not the limit.
        assert!(tunables(Some("glibc.malloc.arena_max_x=2")).is_some());
    }
}
