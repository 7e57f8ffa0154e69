//! Labs removed on Ctrl-C or SIGTERM too. A benchmark runs for minutes; a `Lab` is removed
//! when dropped, but a signal ends the process without unwinding. Every bench lab is
//! registered here while it lives; [`install`] sets a handler that only raises a flag, and a
//! watcher thread that, when it sees the flag, removes the registered labs (processes inside
//! their namespaces ended, namespaces and files deleted) and exits.
#![allow(unsafe_code)]

use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::time::Duration;

use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};

use crate::Topology;

static RAISED: AtomicBool = AtomicBool::new(false);
static SIGNAL: AtomicI32 = AtomicI32::new(0);
static LABS: Mutex<Vec<(String, Topology, PathBuf)>> = Mutex::new(Vec::new());

extern "C" fn on_signal(sig: i32) {
    // Only atomics: async-signal-safe.
    SIGNAL.store(sig, Ordering::SeqCst);
    RAISED.store(true, Ordering::SeqCst);
}

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

/// Installs the handler for SIGINT and SIGTERM and starts the watcher.
pub fn install() {
    let action = SigAction::new(
        SigHandler::Handler(on_signal),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    for sig in [Signal::SIGINT, Signal::SIGTERM] {
        // SAFETY: the handler only stores to two atomics, which is async-signal-safe, and
        // replaces the default action of a signal this process does not otherwise handle.
        let _ = unsafe { sigaction(sig, &action) };
    }
    std::thread::spawn(|| {
        while !RAISED.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(100));
        }
        let labs = LABS.lock().map(|l| l.clone()).unwrap_or_default();
        for (prefix, topology, root) in labs {
            eprintln!("frr-lab bench: interrupted, removing lab {prefix}");
            if let Err(e) = crate::lab::down_without_state(&topology, &prefix, &root) {
                eprintln!("frr-lab bench: {prefix}: {e}");
            }
            let _ = std::fs::remove_dir_all(root.join(&prefix));
        }
        std::process::exit(128 + SIGNAL.load(Ordering::SeqCst));
    });
}
