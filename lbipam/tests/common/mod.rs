//! Builders shared by the rule and property tests.

#![allow(dead_code, clippy::unwrap_used)] // shared test helpers; a failed unwrap is a failed test

use std::net::IpAddr;

use lbipam::{Allocation, Block, PoolSpec, ServiceRequest};

pub fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

pub fn cidr(s: &str) -> Block {
    Block::Cidr(s.parse().unwrap())
}

pub fn range(a: &str, b: &str) -> Block {
    Block::Range {
        start: ip(a),
        stop: ip(b),
    }
}

pub fn pool(name: &str, blocks: Vec<Block>) -> PoolSpec {
    PoolSpec::new(name, blocks)
}

/// A single-stack IPv4 service in `default`, eligible for `pools`.
pub fn svc(name: &str, pools: &[usize]) -> ServiceRequest {
    ServiceRequest::new("default", name, pools.to_vec())
}

/// The addresses of service `i`, as strings.
pub fn addrs(a: &Allocation, i: usize) -> Vec<String> {
    a.services[i]
        .addresses
        .iter()
        .map(|x| x.ip.to_string())
        .collect()
}

/// Feeds an allocation back as the services' current addresses (what a restart sees).
pub fn with_current(services: &[ServiceRequest], a: &Allocation) -> Vec<ServiceRequest> {
    services
        .iter()
        .zip(&a.services)
        .map(|(s, o)| ServiceRequest {
            current: o.addresses.iter().map(|x| x.ip).collect(),
            ..s.clone()
        })
        .collect()
}
