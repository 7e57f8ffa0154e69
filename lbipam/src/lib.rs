//! LB-IPAM: give LoadBalancer services addresses from `CiliumLoadBalancerIPPool`s.
//!
//! Pure logic over plain types (pools, blocks, service requests, sharing rules): no Kubernetes
//! types and no I/O, so that allocation can be tested exhaustively and restored exactly after a
//! restart. Empty for now; the allocator arrives with the crds/lbipam issue.
