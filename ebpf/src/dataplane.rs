//! [`Dataplane`]: the handle the daemon holds. It owns the maps (in the kernel, or in memory
//! when running without a dataplane), the mirror of what they hold, and the attachments.

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::Serialize;
use tracing::{debug, info, warn};

use crate::config::DataplaneConfig;
use crate::error::{LoadError, SyncError};
use crate::gc::{self, GcReport};
use crate::kernel::{self, Attachment, Kernel};
use crate::list::{ListView, list_view};
use crate::model::{DesiredState, Frontend, FrontendKey};
use crate::plan::{Op, PlanError, Programmer};
use crate::store::{MapStore, MapsSnapshot, MemoryMaps, OpCounts};

/// What a sync did.
#[derive(Debug, Default, Serialize)]
pub struct SyncReport {
    /// Map operations done.
    pub ops: OpCounts,
    /// Frontends programmed now.
    pub frontends: usize,
    /// Frontends that could not be programmed, with why (the others are).
    #[serde(serialize_with = "errors_as_strings")]
    pub rejected: Vec<PlanError>,
    /// Time spent planning and applying.
    pub elapsed: Duration,
}

fn errors_as_strings<S: serde::Serializer>(e: &[PlanError], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(e.iter().map(ToString::to_string))
}

enum Maps {
    Kernel(Box<Kernel>),
    Memory(MemoryMaps),
}

/// The service dataplane of one node.
pub struct Dataplane {
    config: DataplaneConfig,
    maps: Maps,
    programmer: Programmer,
    /// A map operation failed: re-read the maps before planning again.
    dirty: bool,
    pins: Vec<PathBuf>,
}

impl std::fmt::Debug for Dataplane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dataplane")
            .field("kernel", &self.is_kernel())
            .field("frontends", &self.programmer.frontend_count())
            .finish_non_exhaustive()
    }
}

impl Dataplane {
    /// Loads the programs and creates (or, after a restart, adopts) the pinned maps. Nothing
    /// forwards until [`Dataplane::attach`]; adopted maps and links keep forwarding meanwhile.
    pub fn load(config: DataplaneConfig) -> Result<Dataplane, LoadError> {
        config.validate()?;
        config.check_ephemeral_ports()?;
        let k = kernel::load(&config)?;
        let snap = k.maps.snapshot()?;
        let m = config.maglev_m;
        let programmer = Programmer::adopt(config.limits(), &snap, |slot| {
            k.maps.maglev_table(slot, m).ok()
        });
        info!(
            root = %config.bpffs_root.display(),
            frontends = programmer.frontend_count(),
            "dataplane loaded"
        );
        Ok(Dataplane {
            config,
            maps: Maps::Kernel(Box::new(k)),
            programmer,
            dirty: false,
            pins: Vec::new(),
        })
    }

    /// A dataplane that programs nothing in the kernel: the same sync, GC and `lb list`
    /// against maps in memory, for nodes where eBPF cannot or should not be loaded.
    pub fn without_kernel(config: DataplaneConfig) -> Dataplane {
        Dataplane {
            programmer: Programmer::new(config.limits()),
            config,
            maps: Maps::Memory(MemoryMaps::new()),
            dirty: false,
            pins: Vec::new(),
        }
    }

    /// Whether the maps are the kernel's (false: the mode without a dataplane).
    pub fn is_kernel(&self) -> bool {
        matches!(self.maps, Maps::Kernel(_))
    }

    /// The configuration.
    pub fn config(&self) -> &DataplaneConfig {
        &self.config
    }

    fn store(&self) -> &dyn MapStore {
        match &self.maps {
            Maps::Kernel(k) => &k.maps,
            Maps::Memory(m) => m,
        }
    }

    fn store_mut(&mut self) -> &mut dyn MapStore {
        match &mut self.maps {
            Maps::Kernel(k) => &mut k.maps,
            Maps::Memory(m) => m,
        }
    }

    /// Attaches the programs to an interface (in its namespace). Attaching again after a
    /// restart re-points the pinned links to the new programs atomically. Without a kernel
    /// dataplane this does nothing.
    pub fn attach(&mut self, a: &Attachment) -> Result<(), LoadError> {
        match &mut self.maps {
            Maps::Kernel(k) => {
                let pins = k.attach(a)?;
                self.pins.extend(pins);
                Ok(())
            }
            Maps::Memory(_) => {
                debug!(interface = %a.interface, "no kernel dataplane: nothing to attach");
                Ok(())
            }
        }
    }

    /// Changes the SNAT addresses (the node's addresses) without reloading; new SNATed flows
    /// use them, established ones keep theirs.
    pub fn set_snat_addresses(
        &mut self,
        v4: Option<std::net::Ipv4Addr>,
        v6: Option<std::net::Ipv6Addr>,
    ) -> Result<(), SyncError> {
        self.config.snat_v4 = v4;
        self.config.snat_v6 = v6;
        if let Maps::Kernel(k) = &mut self.maps {
            k.maps.write_config(&self.config.config_val())?;
        }
        Ok(())
    }

    /// Detaches every program this dataplane attached (removes their pinned links). The maps
    /// stay pinned.
    pub fn detach_all(&mut self) -> std::io::Result<()> {
        for p in self.pins.drain(..) {
            match std::fs::remove_file(&p) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        Ok(())
    }

    /// Removes the links pinned under the bpffs root that this dataplane did not attach
    /// (interfaces an earlier run attached and this one is no longer told to): their
    /// programs detach. Returns how many were removed. Without a kernel dataplane, nothing.
    pub fn detach_others(&mut self) -> std::io::Result<usize> {
        if !self.is_kernel() {
            return Ok(0);
        }
        let dir = self.config.bpffs_root.join("links");
        let mut n = 0;
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(e),
        };
        for e in entries {
            let path = e?.path();
            if !self.pins.contains(&path) {
                match std::fs::remove_file(&path) {
                    Ok(()) => {
                        info!(link = %path.display(), "detached a link this run does not want");
                        n += 1;
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(n)
    }

    fn refresh_if_dirty(&mut self) -> Result<(), SyncError> {
        if self.dirty {
            let snap = self.store().snapshot()?;
            let m = self.config.maglev_m;
            let store = self.store();
            let programmer = Programmer::adopt(self.config.limits(), &snap, |slot| {
                store.maglev_table(slot, m).ok()
            });
            self.programmer = programmer;
            self.dirty = false;
            warn!("re-read the dataplane maps after a failed update");
        }
        Ok(())
    }

    fn apply(&mut self, ops: &[Op]) -> Result<OpCounts, SyncError> {
        let before = self.store().counts();
        if let Err(e) = self.store_mut().apply(ops) {
            self.dirty = true;
            return Err(e.into());
        }
        let after = self.store().counts();
        Ok(OpCounts {
            updates: after.updates - before.updates,
            deletes: after.deletes - before.deletes,
        })
    }

    /// Makes the maps hold `desired` with the fewest operations. Frontends that cannot be
    /// programmed are reported and skipped; the others are programmed.
    pub fn sync(&mut self, desired: &DesiredState) -> Result<SyncReport, SyncError> {
        let start = Instant::now();
        self.refresh_if_dirty()?;
        let (ops, rejected) = self.programmer.plan(desired);
        for e in &rejected {
            warn!(error = %e, "frontend not programmed");
        }
        let counts = self.apply(&ops)?;
        let report = SyncReport {
            ops: counts,
            frontends: self.programmer.frontend_count(),
            rejected,
            elapsed: start.elapsed(),
        };
        if counts.total() > 0 {
            info!(
                updates = counts.updates,
                deletes = counts.deletes,
                frontends = report.frontends,
                "dataplane synced"
            );
        }
        Ok(report)
    }

    /// Adds or changes one frontend (the incremental form of [`Dataplane::sync`]).
    pub fn upsert(&mut self, f: &Frontend) -> Result<SyncReport, SyncError> {
        let start = Instant::now();
        self.refresh_if_dirty()?;
        let ops = self.programmer.plan_upsert(f)?;
        let counts = self.apply(&ops)?;
        Ok(SyncReport {
            ops: counts,
            frontends: self.programmer.frontend_count(),
            rejected: Vec::new(),
            elapsed: start.elapsed(),
        })
    }

    /// Removes one frontend.
    pub fn remove(&mut self, key: &FrontendKey) -> Result<SyncReport, SyncError> {
        let start = Instant::now();
        self.refresh_if_dirty()?;
        let ops = self.programmer.plan_remove(key);
        let counts = self.apply(&ops)?;
        Ok(SyncReport {
            ops: counts,
            frontends: self.programmer.frontend_count(),
            rejected: Vec::new(),
            elapsed: start.elapsed(),
        })
    }

    /// One conntrack GC pass: expired flows deleted, then draining backends that no flow
    /// uses any more. Run it periodically (every 30 s or so).
    pub fn gc(&mut self) -> Result<GcReport, SyncError> {
        self.gc_at(gc::monotonic_secs())
    }

    /// [`Dataplane::gc`] at a given time (seconds of CLOCK_MONOTONIC), for tests.
    pub fn gc_at(&mut self, now: u32) -> Result<GcReport, SyncError> {
        self.refresh_if_dirty()?;
        let entries = self.store().conntrack()?;
        let snap = self.store().snapshot()?;
        let d = gc::decide(&entries, &snap, now, &self.config.ct_timeouts);
        let deleted = self.store_mut().delete_conntrack(&d.delete)?;
        let in_use: HashSet<u32> = d.backends_in_use;
        let ops = self.programmer.release_drained(&in_use);
        self.apply(&ops)?;
        let report = GcReport {
            scanned: entries.len(),
            deleted,
            flows_kept: d.flows_kept,
            backends_released: ops.len(),
        };
        debug!(?report, "conntrack GC");
        Ok(report)
    }

    /// What the service maps hold.
    pub fn snapshot(&self) -> Result<MapsSnapshot, SyncError> {
        Ok(self.store().snapshot()?)
    }

    /// `lb list` of what the maps hold.
    pub fn list(&self) -> Result<ListView, SyncError> {
        Ok(list_view(&self.snapshot()?))
    }

    /// Conntrack entries (for diagnostics and tests).
    pub fn conntrack(&self) -> Result<Vec<(crate::maps::CtKey, crate::maps::CtVal)>, SyncError> {
        Ok(self.store().conntrack()?)
    }

    /// The programs' counters by name (empty without a kernel dataplane).
    pub fn stats(&self) -> Result<Vec<(&'static str, u64)>, SyncError> {
        match &self.maps {
            Maps::Kernel(k) => Ok(k.maps.stats()?),
            Maps::Memory(_) => Ok(Vec::new()),
        }
    }

    /// Map operations done since this dataplane was made.
    pub fn op_counts(&self) -> OpCounts {
        self.store().counts()
    }

    /// The in-memory maps, in the mode without a dataplane.
    pub fn memory_maps_mut(&mut self) -> Option<&mut MemoryMaps> {
        match &mut self.maps {
            Maps::Memory(m) => Some(m),
            Maps::Kernel(_) => None,
        }
    }
}
