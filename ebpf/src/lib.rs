//! The eBPF service dataplane: tc programs (written in C under `bpf/`, built by `build.rs`
//! with clang) that translate LoadBalancer addresses to backends and replies back, the aya
//! loader, the `#[repr(C)]` map types, the differential map sync, conntrack GC and `lb list`.
//!
//! The daemon holds one [`Dataplane`]:
//!
//! ```no_run
//! use ebpf::{Attachment, Dataplane, DataplaneConfig, DesiredState, Frontend, Protocol};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let cfg = DataplaneConfig { snat_v4: Some("192.168.10.100".parse()?), ..Default::default() };
//! let mut dp = match Dataplane::load(cfg.clone()) {
//!     Ok(dp) => dp,
//!     Err(e) => { eprintln!("{e}"); Dataplane::without_kernel(cfg) }
//! };
//! dp.attach(&Attachment::uplink("eth0"))?;
//! let web = Frontend::new("172.16.1.1".parse()?, 80, Protocol::Tcp)
//!     .backend("10.0.1.2".parse()?, 8080, true);
//! dp.sync(&DesiredState::from_frontends([web]))?;   // level-triggered, differential
//! dp.gc()?;                                          // every 30 s or so
//! print!("{}", ebpf::render_table(&dp.list()?));    // lb list
//! # Ok(()) }
//! ```
//!
//! See `docs/dataplane.md` for the packet path, the maps and the guarantees.

pub mod config;
pub mod dataplane;
pub mod error;
pub mod gc;
pub mod kernel;
pub mod list;
pub mod maglev;
pub mod maps;
pub mod model;
pub mod netns;
pub mod plan;
pub mod store;

pub use config::{DataplaneConfig, MapSizes};
pub use dataplane::{Dataplane, SyncReport};
pub use error::{ConfigError, LoadError, SyncError};
pub use gc::{CtTimeouts, GcReport};
pub use kernel::{Attachment, unpin_all};
pub use list::{ListView, list_view, render_table};
pub use maps::Protocol;
pub use model::{
    Algorithm, Backend, BackendState, DesiredState, Frontend, FrontendKey, ServiceKind,
    TrafficPolicy,
};
pub use store::{MapStore, MapsSnapshot, MemoryMaps, OpCounts};
