//! Labs removed on Ctrl-C or SIGTERM too. A benchmark runs for minutes; a `Lab` is removed
//! when dropped, but a signal ends the process without unwinding. Every bench lab is
//! registered here while it lives; [`install`] blocks SIGINT and SIGTERM in the process and
//! starts a thread that waits for them (`sigwait`, no handler, no `unsafe`), removes the
//! registered labs (processes inside their namespaces ended, namespaces and files deleted) and
//! exits. Programs the labs start get an empty signal mask from `std::process::Command`.

use std::path::PathBuf;
use std::sync::Mutex;

use nix::sys::signal::{SigSet, Signal};

use crate::Topology;

static LABS: Mutex<Vec<(String, Topology, PathBuf)>> = Mutex::new(Vec::new());

/// Registers a lab (its prefix, topology and root) for removal on a signal.
pub fn register(prefix: &str, topology: &Topology, root: &std::path::Path) {
    if let Ok(mut l) = LABS.lock() {
        l.push((prefix.to_owned(), topology.clone(), root.to_owned()));
    }
}

/// Forgets a lab that was removed the ordinary way.
pub fn forget(prefix: &str) {
    if let Ok(mut l) = LABS.lock() {
        l.retain(|(p, _, _)| p != prefix);
    }
}

/// Blocks SIGINT and SIGTERM and starts the thread that waits for them. Call it before any
/// other thread starts: threads inherit the mask.
pub fn install() {
    let mut set = SigSet::empty();
    set.add(Signal::SIGINT);
    set.add(Signal::SIGTERM);
    if let Err(e) = set.thread_block() {
        eprintln!("frr-lab bench: cannot block SIGINT/SIGTERM ({e}); a signal leaves labs behind");
        return;
    }
    std::thread::spawn(move || {
        let sig = match set.wait() {
            Ok(s) => s as i32,
            Err(_) => Signal::SIGTERM as i32,
        };
        let labs = LABS.lock().map(|l| l.clone()).unwrap_or_default();
        for (prefix, topology, root) in labs {
            eprintln!("frr-lab bench: interrupted, removing lab {prefix}");
            if let Err(e) = crate::lab::down_without_state(&topology, &prefix, &root) {
                eprintln!("frr-lab bench: {prefix}: {e}");
            }
            let _ = std::fs::remove_dir_all(root.join(&prefix));
        }
        std::process::exit(128 + sig);
    });
}
