//! The `lbspeaker` command line: each command group in a module of its own, so that
//! `main.rs` only dispatches.

pub mod bgp;
pub mod convert;
pub mod decode;
pub mod kube;
pub mod node;
pub mod pcap;
pub mod query;
pub mod run;
