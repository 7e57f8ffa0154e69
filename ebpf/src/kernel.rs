//! The kernel side: loading the object with aya, pinning and adopting its maps under the
//! bpffs root, attaching the tc programs (TCX links, pinned too, so a restart keeps
//! forwarding), and [`KernelMaps`], the [`MapStore`] over the real maps.

use std::collections::HashSet;
use std::io;
use std::path::{Path, PathBuf};

use aya::maps::{Array, HashMap as BpfHashMap, MapData, MapError, PerCpuArray};
use aya::programs::links::{FdLink, PinnedLink};
use aya::programs::tc::{SchedClassifierLink, TcAttachType};
use aya::programs::{ProgramError, SchedClassifier};
use aya::{Ebpf, EbpfLoader};
use tracing::{debug, info};

use crate::config::DataplaneConfig;
use crate::error::LoadError;
use crate::maps::{
    BackendVal, ConfigVal, CtKey, CtVal, IfaceVal, LAYOUT_VERSION, OBJECT, RevNatVal, STAT_NAMES,
    SvcKey, SvcVal, iface_flags,
};
use crate::netns;
use crate::plan::Op;
use crate::store::{MapStore, MapsSnapshot, OpCounts, StoreError, count};

/// `BPF_FS_MAGIC`, the `f_type` of a bpffs mount.
const BPF_FS_MAGIC: i64 = 0xcafe_4a11;

/// Names, key sizes, value sizes of the pinned maps, for the compatibility check.
fn expected_maps(cfg: &DataplaneConfig) -> Vec<(&'static str, u32, u32, u32)> {
    use std::mem::size_of;
    let s = &cfg.sizes;
    vec![
        (
            "lb_services",
            size_of::<SvcKey>() as u32,
            size_of::<SvcVal>() as u32,
            s.services,
        ),
        ("lb_backends", 4, size_of::<BackendVal>() as u32, s.backends),
        ("lb_rev_nat", 2, size_of::<RevNatVal>() as u32, s.rev_nat),
        (
            "lb_ct",
            size_of::<CtKey>() as u32,
            size_of::<CtVal>() as u32,
            s.conntrack_tcp,
        ),
        (
            "lb_ct_any",
            size_of::<CtKey>() as u32,
            size_of::<CtVal>() as u32,
            s.conntrack_other,
        ),
        ("lb_maglev", 4, 4, cfg.maglev_entries()),
        ("lb_config", 4, size_of::<ConfigVal>() as u32, 1),
        ("lb_ifaces", 4, size_of::<IfaceVal>() as u32, s.interfaces),
        ("lb_stats", 4, 8, STAT_NAMES.len() as u32),
    ]
}

fn is_bpffs(path: &Path) -> bool {
    // The nearest existing ancestor decides where a new directory would live.
    let mut p = path;
    loop {
        if p.exists() {
            return nix::sys::statfs::statfs(p)
                .map(|s| s.filesystem_type().0 == BPF_FS_MAGIC)
                .unwrap_or(false);
        }
        match p.parent() {
            Some(parent) => p = parent,
            None => return false,
        }
    }
}

fn permission_hint(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc_eperm) if libc_eperm == nix::libc::EPERM || libc_eperm == nix::libc::EACCES)
}

fn map_err(map: &'static str, op: &'static str, max_entries: u32, e: MapError) -> StoreError {
    if let MapError::SyscallError(s) = &e
        && matches!(s.io_error.raw_os_error(), Some(c) if c == nix::libc::E2BIG || c == nix::libc::ENOSPC)
    {
        return StoreError::Full { map, max_entries };
    }
    StoreError::Map {
        map,
        op,
        message: e.to_string(),
    }
}

fn is_not_found(e: &MapError) -> bool {
    matches!(e, MapError::KeyNotFound | MapError::ElementNotFound)
        || matches!(e, MapError::SyscallError(s) if s.io_error.raw_os_error() == Some(nix::libc::ENOENT))
}

/// The dataplane's maps in the kernel.
pub struct KernelMaps {
    services: BpfHashMap<MapData, SvcKey, SvcVal>,
    backends: BpfHashMap<MapData, u32, BackendVal>,
    rev_nat: BpfHashMap<MapData, u16, RevNatVal>,
    ct: BpfHashMap<MapData, CtKey, CtVal>,
    ct_any: BpfHashMap<MapData, CtKey, CtVal>,
    maglev: Array<MapData, u32>,
    config: Array<MapData, ConfigVal>,
    ifaces: BpfHashMap<MapData, u32, IfaceVal>,
    stats: PerCpuArray<MapData, u64>,
    sizes: crate::config::MapSizes,
    counts: OpCounts,
}

impl std::fmt::Debug for KernelMaps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KernelMaps")
            .field("counts", &self.counts)
            .finish_non_exhaustive()
    }
}

fn take<T>(ebpf: &mut Ebpf, name: &'static str) -> Result<T, LoadError>
where
    T: TryFrom<aya::maps::Map, Error = MapError>,
{
    let map = ebpf.take_map(name).ok_or_else(|| LoadError::Object {
        message: format!("map {name} is missing from the object"),
    })?;
    T::try_from(map).map_err(|e| LoadError::Object {
        message: format!("map {name}: {e}"),
    })
}

impl KernelMaps {
    fn from_ebpf(ebpf: &mut Ebpf, cfg: &DataplaneConfig) -> Result<KernelMaps, LoadError> {
        Ok(KernelMaps {
            services: take(ebpf, "lb_services")?,
            backends: take(ebpf, "lb_backends")?,
            rev_nat: take(ebpf, "lb_rev_nat")?,
            ct: take(ebpf, "lb_ct")?,
            ct_any: take(ebpf, "lb_ct_any")?,
            maglev: take(ebpf, "lb_maglev")?,
            config: take(ebpf, "lb_config")?,
            ifaces: take(ebpf, "lb_ifaces")?,
            stats: take(ebpf, "lb_stats")?,
            sizes: cfg.sizes,
            counts: OpCounts::default(),
        })
    }

    /// The program counters (`lb_stats`), summed over CPUs, by name.
    pub fn stats(&self) -> Result<Vec<(&'static str, u64)>, StoreError> {
        let mut out = Vec::new();
        for (i, name) in STAT_NAMES.iter().enumerate() {
            let v = self
                .stats
                .get(&(i as u32), 0)
                .map_err(|e| map_err("lb_stats", "lookup", 0, e))?;
            out.push((*name, v.iter().sum()));
        }
        Ok(out)
    }

    fn read_config(&self) -> Result<ConfigVal, StoreError> {
        self.config
            .get(&0, 0)
            .map_err(|e| map_err("lb_config", "lookup", 1, e))
    }

    pub(crate) fn write_config(&mut self, v: &ConfigVal) -> Result<(), StoreError> {
        self.config
            .set(0, v, 0)
            .map_err(|e| map_err("lb_config", "update", 1, e))
    }

    fn set_iface(&mut self, ifindex: u32, flags: u32) -> Result<(), StoreError> {
        let max = self.sizes.interfaces;
        self.ifaces
            .insert(ifindex, IfaceVal { flags }, 0)
            .map_err(|e| map_err("lb_ifaces", "update", max, e))
    }
}

impl MapStore for KernelMaps {
    fn apply(&mut self, ops: &[Op]) -> Result<(), StoreError> {
        let s = self.sizes;
        for op in ops {
            match op {
                Op::PutBackend(id, v) => self
                    .backends
                    .insert(id, v, 0)
                    .map_err(|e| map_err("lb_backends", "update", s.backends, e))?,
                Op::DelBackend(id) => match self.backends.remove(id) {
                    Err(e) if !is_not_found(&e) => {
                        return Err(map_err("lb_backends", "delete", s.backends, e));
                    }
                    _ => {}
                },
                Op::PutSvc(k, v) => self
                    .services
                    .insert(k, v, 0)
                    .map_err(|e| map_err("lb_services", "update", s.services, e))?,
                Op::DelSvc(k) => match self.services.remove(k) {
                    Err(e) if !is_not_found(&e) => {
                        return Err(map_err("lb_services", "delete", s.services, e));
                    }
                    _ => {}
                },
                Op::PutRevNat(id, v) => self
                    .rev_nat
                    .insert(id, v, 0)
                    .map_err(|e| map_err("lb_rev_nat", "update", s.rev_nat, e))?,
                Op::DelRevNat(id) => match self.rev_nat.remove(id) {
                    Err(e) if !is_not_found(&e) => {
                        return Err(map_err("lb_rev_nat", "delete", s.rev_nat, e));
                    }
                    _ => {}
                },
                Op::PutMaglev(i, id) => self
                    .maglev
                    .set(*i, id, 0)
                    .map_err(|e| map_err("lb_maglev", "update", 0, e))?,
            }
            count(&mut self.counts, op);
        }
        Ok(())
    }

    fn snapshot(&self) -> Result<MapsSnapshot, StoreError> {
        let mut snap = MapsSnapshot::default();
        for r in self.services.iter() {
            snap.services
                .push(r.map_err(|e| map_err("lb_services", "iterate", 0, e))?);
        }
        for r in self.backends.iter() {
            snap.backends
                .push(r.map_err(|e| map_err("lb_backends", "iterate", 0, e))?);
        }
        for r in self.rev_nat.iter() {
            snap.rev_nat
                .push(r.map_err(|e| map_err("lb_rev_nat", "iterate", 0, e))?);
        }
        snap.services.sort_by_key(|(k, _)| *k);
        snap.backends.sort_by_key(|(k, _)| *k);
        snap.rev_nat.sort_by_key(|(k, _)| *k);
        Ok(snap)
    }

    fn maglev_table(&self, slot: u16, m: u32) -> Result<Vec<u32>, StoreError> {
        let base = u32::from(slot) * m;
        (base..base + m)
            .map(|i| {
                self.maglev
                    .get(&i, 0)
                    .map_err(|e| map_err("lb_maglev", "lookup", 0, e))
            })
            .collect()
    }

    fn conntrack(&self) -> Result<Vec<(CtKey, CtVal)>, StoreError> {
        let mut out = Vec::new();
        for (map, name) in [(&self.ct, "lb_ct"), (&self.ct_any, "lb_ct_any")] {
            for r in map.iter() {
                match r {
                    Ok(kv) => out.push(kv),
                    // An LRU entry evicted between listing and reading it.
                    Err(e) if is_not_found(&e) => {}
                    Err(e) => return Err(map_err(name, "iterate", 0, e)),
                }
            }
        }
        Ok(out)
    }

    fn delete_conntrack(&mut self, keys: &[CtKey]) -> Result<usize, StoreError> {
        let mut n = 0;
        for k in keys {
            let (map, name) = if k.proto == 6 {
                (&mut self.ct, "lb_ct")
            } else {
                (&mut self.ct_any, "lb_ct_any")
            };
            match map.remove(k) {
                Ok(()) => n += 1,
                Err(e) if is_not_found(&e) => {}
                Err(e) => return Err(map_err(name, "delete", 0, e)),
            }
        }
        self.counts.deletes += n as u64;
        Ok(n)
    }

    fn counts(&self) -> OpCounts {
        self.counts
    }
}

/// Which tc hooks of an interface to attach to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    /// The interface name, in `netns`.
    pub interface: String,
    /// The network namespace (a path such as `/run/netns/NAME` or `/proc/PID/ns/net`);
    /// `None` for the caller's.
    pub netns: Option<PathBuf>,
    /// Attach `lb_ingress` (frontends, replies, ICMP errors).
    pub ingress: bool,
    /// Attach `lb_egress` (replies and ICMP errors only): the uplink, for replies of
    /// backends whose own interfaces carry no program.
    pub egress: bool,
    /// The interface faces backends: frontends with two scopes use the internal one.
    pub internal: bool,
}

impl Attachment {
    /// The node's uplink: ingress and egress.
    pub fn uplink(interface: impl Into<String>) -> Attachment {
        Attachment {
            interface: interface.into(),
            netns: None,
            ingress: true,
            egress: true,
            internal: false,
        }
    }

    /// An interface facing backends (a pod's veth, a backend segment): ingress only.
    pub fn backend_facing(interface: impl Into<String>) -> Attachment {
        Attachment {
            interface: interface.into(),
            netns: None,
            ingress: true,
            egress: false,
            internal: true,
        }
    }

    /// The same attachment in a network namespace.
    pub fn in_netns(mut self, netns: impl Into<PathBuf>) -> Attachment {
        self.netns = Some(netns.into());
        self
    }
}

/// The loaded programs and their maps.
pub(crate) struct Kernel {
    pub(crate) ebpf: Ebpf,
    pub(crate) maps: KernelMaps,
    pub(crate) root: PathBuf,
}

impl std::fmt::Debug for Kernel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kernel")
            .field("root", &self.root)
            .finish_non_exhaustive()
    }
}

fn check_pins(cfg: &DataplaneConfig) -> Result<bool, LoadError> {
    let mut any = false;
    for (name, key, value, max) in expected_maps(cfg) {
        let path = cfg.bpffs_root.join(name);
        if !path.exists() {
            continue;
        }
        any = true;
        let info =
            aya::maps::MapInfo::from_pin(&path).map_err(|e| LoadError::IncompatiblePins {
                root: cfg.bpffs_root.clone(),
                detail: format!("{name}: {e}"),
            })?;
        let have = (info.key_size(), info.value_size(), info.max_entries());
        if (have.0, have.1) != (key, value) {
            return Err(LoadError::IncompatiblePins {
                root: cfg.bpffs_root.clone(),
                detail: format!(
                    "{name} has key/value sizes {}/{}, this build needs {key}/{value}",
                    have.0, have.1
                ),
            });
        }
        if have.2 != max {
            return Err(LoadError::IncompatiblePins {
                root: cfg.bpffs_root.clone(),
                detail: format!(
                    "{name} holds {} entries, the configuration asks for {max}",
                    have.2
                ),
            });
        }
    }
    Ok(any)
}

/// Loads the object: maps created (or adopted) under the bpffs root, programs verified.
pub(crate) fn load(cfg: &DataplaneConfig) -> Result<Kernel, LoadError> {
    let root = cfg.bpffs_root.clone();
    if !is_bpffs(&root) {
        return Err(LoadError::NoBpffs { path: root });
    }
    std::fs::create_dir_all(root.join("links")).map_err(|e| LoadError::Io {
        what: format!("cannot create {}", root.display()),
        error: e,
    })?;
    let adopted = check_pins(cfg)?;

    let mut loader = EbpfLoader::new();
    loader.default_map_pin_directory(&root);
    let s = cfg.sizes;
    loader
        .map_max_entries("lb_services", s.services)
        .map_max_entries("lb_backends", s.backends)
        .map_max_entries("lb_rev_nat", s.rev_nat)
        .map_max_entries("lb_ct", s.conntrack_tcp)
        .map_max_entries("lb_ct_any", s.conntrack_other)
        .map_max_entries("lb_maglev", cfg.maglev_entries())
        .map_max_entries("lb_ifaces", s.interfaces);
    let mut ebpf = loader.load(OBJECT).map_err(|e| {
        let text = e.to_string();
        let denied = matches!(&e, aya::EbpfError::MapError(MapError::CreateError { io_error, .. }) if permission_hint(io_error))
            || text.contains("Operation not permitted");
        if denied {
            LoadError::Permission {
                what: "creating BPF maps".into(),
            }
        } else {
            LoadError::Object { message: text }
        }
    })?;
    for name in ["lb_ingress", "lb_egress"] {
        let prog: &mut SchedClassifier = ebpf
            .program_mut(name)
            .ok_or_else(|| LoadError::Object {
                message: format!("program {name} is missing from the object"),
            })?
            .try_into()
            .map_err(|e: ProgramError| LoadError::Object {
                message: e.to_string(),
            })?;
        prog.load().map_err(|e| match &e {
            ProgramError::LoadError { io_error, .. } if permission_hint(io_error) => {
                LoadError::Permission {
                    what: format!("loading program {name}"),
                }
            }
            ProgramError::LoadError {
                io_error,
                verifier_log,
            } => LoadError::Verifier {
                program: name,
                message: io_error.to_string(),
                log: verifier_log.to_string(),
            },
            other => LoadError::Object {
                message: format!("{name}: {other}"),
            },
        })?;
    }
    let mut maps = KernelMaps::from_ebpf(&mut ebpf, cfg)?;

    let want = cfg.config_val();
    if adopted {
        let have = maps.read_config().map_err(LoadError::Store)?;
        if have.layout_version != 0 && have.layout_version != LAYOUT_VERSION {
            return Err(LoadError::IncompatiblePins {
                root,
                detail: format!(
                    "the maps have layout version {}, this build writes {LAYOUT_VERSION}",
                    have.layout_version
                ),
            });
        }
        if have.maglev_m != 0 && have.maglev_m != want.maglev_m {
            return Err(LoadError::IncompatiblePins {
                root,
                detail: format!(
                    "the Maglev tables have {} entries, the configuration asks for {}",
                    have.maglev_m, want.maglev_m
                ),
            });
        }
        info!(root = %root.display(), "adopting pinned dataplane maps");
    }
    maps.write_config(&want).map_err(LoadError::Store)?;
    Ok(Kernel { ebpf, maps, root })
}

impl Kernel {
    fn program(&mut self, name: &str) -> Result<&mut SchedClassifier, LoadError> {
        self.ebpf
            .program_mut(name)
            .ok_or_else(|| LoadError::Object {
                message: format!("program {name} is missing"),
            })?
            .try_into()
            .map_err(|e: ProgramError| LoadError::Object {
                message: e.to_string(),
            })
    }

    /// Attaches (or, when a pinned link from an earlier run exists, atomically re-points) the
    /// programs on an interface, and pins the links.
    pub(crate) fn attach(&mut self, a: &Attachment) -> Result<Vec<PathBuf>, LoadError> {
        let ns_tag = match &a.netns {
            None => "self".to_owned(),
            Some(p) => {
                use std::os::unix::fs::MetadataExt as _;
                let md = std::fs::metadata(p).map_err(|e| LoadError::Io {
                    what: format!("network namespace {}", p.display()),
                    error: e,
                })?;
                format!("ns{}", md.ino())
            }
        };
        let iface = a.interface.clone();
        let ifindex = netns::run_in(a.netns.as_deref(), || {
            nix::net::if_::if_nametoindex(iface.as_str())
        })
        .map_err(|e| LoadError::Io {
            what: "entering the network namespace".into(),
            error: e,
        })?
        .map_err(|_| LoadError::NoInterface {
            interface: a.interface.clone(),
            netns: a.netns.clone(),
        })?;
        let flags = if a.internal { iface_flags::INTERNAL } else { 0 };
        self.maps
            .set_iface(ifindex, flags)
            .map_err(LoadError::Store)?;

        let mut pins = Vec::new();
        for (wanted, hook, prog_name, tag) in [
            (a.ingress, TcAttachType::Ingress, "lb_ingress", "ingress"),
            (a.egress, TcAttachType::Egress, "lb_egress", "egress"),
        ] {
            if !wanted {
                continue;
            }
            let pin = self
                .root
                .join("links")
                .join(format!("{ns_tag}_{ifindex}_{tag}"));
            let iface = a.interface.clone();
            let prog = self.program(prog_name)?;
            let link_id = match PinnedLink::from_pin(&pin) {
                Ok(old) => {
                    debug!(interface = %iface, hook = tag, "re-pointing the pinned link");
                    let link = SchedClassifierLink::try_from(FdLink::from(old)).map_err(|e| {
                        LoadError::Attach {
                            interface: iface.clone(),
                            message: e.to_string(),
                        }
                    })?;
                    prog.attach_to_link(link)
                }
                Err(_) => netns::run_in(a.netns.as_deref(), || prog.attach(&iface, hook)).map_err(
                    |e| LoadError::Io {
                        what: "entering the network namespace".into(),
                        error: e,
                    },
                )?,
            }
            .map_err(|e| attach_error(&a.interface, e))?;
            let link = prog
                .take_link(link_id)
                .map_err(|e| attach_error(&a.interface, e))?;
            let fd: FdLink = link
                .try_into()
                .map_err(|e: aya::programs::links::LinkError| LoadError::Attach {
                    interface: a.interface.clone(),
                    message: format!(
                        "{e}: tc links can be pinned (and survive a restart) only through TCX, \
                         Linux 6.6 or later"
                    ),
                })?;
            let _ = std::fs::remove_file(&pin);
            let pinned = fd.pin(&pin).map_err(|e| LoadError::Attach {
                interface: a.interface.clone(),
                message: format!("pinning the link at {}: {e}", pin.display()),
            })?;
            // The pin keeps the program attached; our descriptor may go.
            drop(pinned);
            info!(interface = %a.interface, hook = tag, ifindex, "dataplane attached");
            pins.push(pin);
        }
        Ok(pins)
    }
}

fn attach_error(interface: &str, e: ProgramError) -> LoadError {
    let text = e.to_string();
    match &e {
        ProgramError::SyscallError(s) if permission_hint(&s.io_error) => LoadError::Permission {
            what: format!("attaching to {interface}"),
        },
        _ => LoadError::Attach {
            interface: interface.to_owned(),
            message: text,
        },
    }
}

/// Removes the links pinned under `root` (detaching the programs) and, with `maps`, the
/// pinned maps: what `lbspeaker` does when the dataplane is switched off for good.
pub fn unpin_all(root: &Path, maps: bool) -> io::Result<usize> {
    let mut n = 0;
    let links = root.join("links");
    if links.is_dir() {
        for e in std::fs::read_dir(&links)? {
            std::fs::remove_file(e?.path())?;
            n += 1;
        }
    }
    if maps {
        let names: HashSet<&str> = [
            "lb_services",
            "lb_backends",
            "lb_rev_nat",
            "lb_ct",
            "lb_ct_any",
            "lb_maglev",
            "lb_config",
            "lb_ifaces",
            "lb_stats",
        ]
        .into_iter()
        .collect();
        if root.is_dir() {
            for e in std::fs::read_dir(root)? {
                let e = e?;
                if e.file_name().to_str().is_some_and(|n| names.contains(n)) {
                    std::fs::remove_file(e.path())?;
                    n += 1;
                }
            }
        }
        let _ = std::fs::remove_dir(&links);
        let _ = std::fs::remove_dir(root);
    }
    Ok(n)
}
