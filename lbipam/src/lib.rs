//! LB-IPAM: give LoadBalancer services addresses from `CiliumLoadBalancerIPPool`s.
//!
//! Pure logic over plain types: no Kubernetes types and no I/O, so that allocation can be
//! tested exhaustively and restored exactly after a restart. `agent-glue` translates pools and
//! services into [`PoolSpec`]s and [`ServiceRequest`]s (evaluating the pools' label selectors
//! there, with `crds::selector`, and listing for each service the pools that select it), calls
//! [`allocate`], and writes the answer back as Service and pool status.
//!
//! [`allocate`] is one level-triggered pass: the state is the set of addresses services hold
//! now (their `status.loadBalancer.ingress`), re-imported before anything new is given. So an
//! address stays with its service until the service lets it go, across pool edits, restarts
//! and leader changes, and running the pass on its own output changes nothing. Memory grows
//! with the number of allocations, never with the size of a pool: a `::/0` pool costs what a
//! /24 costs. Counts are exact for any prefix length ([`Count`]).
//!
//! The rules, pool choice included, are in `docs/lbipam.md`.

mod alloc;
mod count;
mod pools;
mod range;
mod types;

pub use alloc::allocate;
pub use count::Count;
pub use range::{Addr, AddrRange, Family};
pub use types::{
    Allocation, Assigned, Block, CrossNamespace, Families, PoolId, PoolOutcome, PoolSpec, Reason,
    ServiceOutcome, ServiceRequest,
};
