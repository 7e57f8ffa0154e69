//! Running a piece of code inside another network namespace: interface lookups and tc
//! attachment act on the calling thread's namespace, so they run on a short-lived thread
//! that has entered it (`setns`), leaving every other thread where it was.
//!
//! Unlike `ip netns exec`, this does not remount `/sys`, so pins under the bpffs root stay
//! visible.

use std::fs::File;
use std::io;
use std::path::Path;

use nix::sched::{CloneFlags, setns};

/// Runs `f` in the network namespace at `netns` (`/run/netns/NAME`, `/proc/PID/ns/net`), or
/// in the caller's when `None`.
pub fn run_in<T: Send>(netns: Option<&Path>, f: impl FnOnce() -> T + Send) -> io::Result<T> {
    let Some(path) = netns else {
        return Ok(f());
    };
    let file = File::open(path)?;
    std::thread::scope(|s| {
        s.spawn(move || -> io::Result<T> {
            setns(&file, CloneFlags::CLONE_NEWNET).map_err(io::Error::from)?;
            Ok(f())
        })
        .join()
        .map_err(|_| io::Error::other("the thread in the network namespace panicked"))?
    })
}

/// The path of a named namespace made by `ip netns add NAME`.
pub fn named(name: &str) -> std::path::PathBuf {
    Path::new("/run/netns").join(name)
}
