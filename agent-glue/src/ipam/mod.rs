//! LB-IPAM in the daemon: translate the snapshot's pools and Services into `lbipam`'s plain
//! types ([`translate`]), allocate, turn the answer into Service status
//! (`status.loadBalancer.ingress` and `cilium.io/IPAMRequestSatisfied`) and pool conditions
//! ([`reconcile`], pure), and write what differs ([`apply`]). Only the operator-role leader
//! runs it; every process sees the result through its source.

pub mod apply;
pub mod reconcile;
pub mod translate;

pub use apply::{IpamController, Round, run};
pub use reconcile::{Desired, DesiredPool, DesiredService, Pending, reconcile};
