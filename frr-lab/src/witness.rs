//! Witnesses for L2 tests: what a host in the lab sees of ARP and NDP, read with the tools a
//! user would run (`arping`, `ndisc6`, `ip neigh`), so that tests of the announcer and of the
//! daemon ask the same questions the same way. MAC addresses come back as lowercase text
//! (`02:00:00:00:00:01`); callers parse them into their own types.

use serde_json::Value;

use crate::{Lab, LabError};

/// The MACs that answered `arping -c COUNT` for `addr` from `node` on `iface`, one per reply
/// (a second responder shows as a second MAC).
pub fn arping(
    lab: &Lab,
    node: &str,
    iface: &str,
    addr: &str,
    count: u32,
) -> Result<Vec<String>, LabError> {
    let count = count.to_string();
    let out = lab.exec(
        node,
        "arping",
        &["-c", &count, "-W", "0.3", "-i", iface, addr],
    )?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mac = l.split_once(" bytes from ")?.1.split_whitespace().next()?;
            Some(mac.to_lowercase())
        })
        .collect())
}

/// The target link-layer addresses of every advertisement `ndisc6 -m` got for `addr` from
/// `node` on `iface`.
pub fn ndisc(lab: &Lab, node: &str, iface: &str, addr: &str) -> Result<Vec<String>, LabError> {
    let out = lab.exec(
        node,
        "ndisc6",
        &["-m", "-n", "-r", "1", "-w", "500", addr, iface],
    )?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mac = l.trim().strip_prefix("Target link-layer address: ")?;
            Some(mac.trim().to_lowercase())
        })
        .collect())
}

/// `node`'s neighbour cache entry for `addr` on `iface` (IPv4 or IPv6), if it has one with a
/// link-layer address.
pub fn neighbour(lab: &Lab, node: &str, iface: &str, addr: &str) -> Option<String> {
    let out = lab
        .exec_ok(node, "ip", &["-j", "neigh", "show", addr, "dev", iface])
        .ok()?;
    let v: Value = serde_json::from_str(&out).ok()?;
    Some(v.as_array()?.first()?["lladdr"].as_str()?.to_lowercase())
}

/// The MAC address of `iface` in `node`.
pub fn link_mac(lab: &Lab, node: &str, iface: &str) -> Result<String, LabError> {
    let out = lab.exec_ok(node, "cat", &[&format!("/sys/class/net/{iface}/address")])?;
    Ok(out.trim().to_lowercase())
}

/// `ip link set IFACE up|down` in `node`.
pub fn set_link(lab: &Lab, node: &str, iface: &str, up: bool) -> Result<(), LabError> {
    lab.exec_ok(
        node,
        "ip",
        &["link", "set", iface, if up { "up" } else { "down" }],
    )
    .map(drop)
}
