//! One BGP intent ([`BgpSpec`]), three configuration languages: gobgpd's TOML, BIRD's
//! configuration and FRR's. Every daemon in a lab gets the same semantics this way: the same
//! timers, multihop, passwords, graceful restart and originated prefixes.

use std::fmt::Write as _;

use crate::topology::{AddressFamily, BgpSpec, NeighborSpec};

/// Which unicast families a neighbor carries: those it lists, else IPv4 always and IPv6 when
/// the session is IPv6 or IPv6 prefixes are announced.
fn families(bgp: &BgpSpec, n: &NeighborSpec) -> (bool, bool) {
    if !n.families.is_empty() {
        return (
            n.families.contains(&AddressFamily::Ipv4),
            n.families.contains(&AddressFamily::Ipv6),
        );
    }
    let v6 = n.address.is_ipv6() || bgp.announce.iter().any(|p| p.addr().is_ipv6());
    (true, v6)
}

/// A TOML basic string.
fn toml_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A string in BIRD's or FRR's configuration, where quotes cannot be escaped.
fn plain_str(s: &str) -> String {
    s.chars().filter(|c| !c.is_control() && *c != '"').collect()
}

/// gobgpd's configuration file. Routes are injected through its API after start-up, since
/// gobgpd has no static-route section.
pub fn gobgpd_toml(bgp: &BgpSpec) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "[global.config]\n  as = {}\n  router-id = \"{}\"",
        bgp.asn, bgp.router_id
    );
    if !bgp.listen {
        // -1: do not listen, dial out only (what Cilium does).
        let _ = writeln!(s, "  port = -1");
    }
    for n in &bgp.neighbors {
        let _ = writeln!(
            s,
            "\n[[neighbors]]\n  [neighbors.config]\n    neighbor-address = \"{}\"\n    peer-as = {}",
            n.address, n.asn
        );
        if let Some(p) = &n.password {
            let _ = writeln!(s, "    auth-password = {}", toml_str(p));
        }
        let _ = writeln!(
            s,
            "  [neighbors.timers.config]\n    connect-retry = {}",
            n.connect_retry_or_default()
        );
        if let Some(h) = n.hold_time {
            let _ = writeln!(s, "    hold-time = {h}");
        }
        if let Some(k) = n.keepalive {
            let _ = writeln!(s, "    keepalive-interval = {k}");
        }
        if let Some(ttl) = n.multihop {
            let _ = writeln!(
                s,
                "  [neighbors.ebgp-multihop.config]\n    enabled = true\n    multihop-ttl = {ttl}"
            );
        }
        if let Some(t) = n.graceful_restart {
            let _ = writeln!(
                s,
                "  [neighbors.graceful-restart.config]\n    enabled = true\n    restart-time = {t}"
            );
        }
        let (v4, v6) = families(bgp, n);
        for (on, name) in [(v4, "ipv4-unicast"), (v6, "ipv6-unicast")] {
            if !on {
                continue;
            }
            let _ = writeln!(
                s,
                "  [[neighbors.afi-safis]]\n    [neighbors.afi-safis.config]\n      afi-safi-name = \"{name}\""
            );
            if n.graceful_restart.is_some() {
                let _ = writeln!(
                    s,
                    "    [neighbors.afi-safis.mp-graceful-restart.config]\n      enabled = true"
                );
            }
        }
    }
    s
}

/// BIRD 2's configuration; originated prefixes are static blackhole routes exported to BGP.
pub fn bird_conf(bgp: &BgpSpec, log_file: &str) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "log \"{}\" all;", plain_str(log_file));
    let _ = writeln!(s, "router id {};", bgp.router_id);
    let _ = writeln!(s, "protocol device {{ scan time 10; }}");
    let v4: Vec<_> = bgp.announce.iter().filter(|p| p.addr().is_ipv4()).collect();
    let v6: Vec<_> = bgp.announce.iter().filter(|p| p.addr().is_ipv6()).collect();
    for (name, family, prefixes) in [("static4", "ipv4", &v4), ("static6", "ipv6", &v6)] {
        let _ = writeln!(s, "protocol static {name} {{\n  {family};");
        for p in prefixes.iter() {
            let _ = writeln!(s, "  route {p} blackhole;");
        }
        let _ = writeln!(s, "}}");
    }
    for (i, n) in bgp.neighbors.iter().enumerate() {
        let _ = writeln!(s, "protocol bgp peer{} {{", i + 1);
        let _ = writeln!(s, "  local as {};", bgp.asn);
        let _ = writeln!(s, "  neighbor {} as {};", n.address, n.asn);
        if let Some(h) = n.hold_time {
            let _ = writeln!(s, "  hold time {h};");
        }
        if let Some(k) = n.keepalive {
            let _ = writeln!(s, "  keepalive time {k};");
        }
        let retry = n.connect_retry_or_default();
        let _ = writeln!(
            s,
            "  connect delay time 1;\n  connect retry time {retry};\n  error wait time 1, 10;"
        );
        if let Some(ttl) = n.multihop {
            let _ = writeln!(s, "  multihop {ttl};");
        }
        if let Some(p) = &n.password {
            let _ = writeln!(s, "  password \"{}\";", plain_str(p));
        }
        if let Some(t) = n.graceful_restart {
            let _ = writeln!(s, "  graceful restart on;\n  graceful restart time {t};");
        }
        let (v4on, v6on) = families(bgp, n);
        for (on, family, table) in [(v4on, "ipv4", "static4"), (v6on, "ipv6", "static6")] {
            if !on {
                continue;
            }
            let export = if bgp.transit {
                "export all".to_owned()
            } else {
                format!("export where proto = \"{table}\"")
            };
            // A family other than the session's needs a next hop of its own family: the
            // address of the interface toward the peer.
            let other = (family == "ipv6") != n.address.is_ipv6();
            let next_hop = if other { " next hop self;" } else { "" };
            let _ = writeln!(s, "  {family} {{ import all; {export};{next_hop} }};");
        }
        let _ = writeln!(s, "}}");
    }
    s
}

/// FRR's bgpd configuration (traditional defaults, no policy required, network statements
/// without import check so originated prefixes need no route in the RIB).
pub fn frr_bgpd_conf(hostname: &str, bgp: &BgpSpec) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "frr defaults traditional\nhostname {}\n!",
        plain_str(hostname)
    );
    if bgp.no_fib {
        let _ = writeln!(s, "bgp no-rib\n!");
    }
    let _ = writeln!(s, "router bgp {}", bgp.asn);
    let _ = writeln!(s, " bgp router-id {}", bgp.router_id);
    let _ = writeln!(
        s,
        " no bgp ebgp-requires-policy\n no bgp network import-check"
    );
    if let Some(t) = bgp.neighbors.iter().find_map(|n| n.graceful_restart) {
        // Like the other daemons (and lbspeaker), FRR then says its forwarding state survives
        // a restart (the F bit), so helpers keep its routes until End-of-RIB.
        let _ = writeln!(
            s,
            " bgp graceful-restart\n bgp graceful-restart restart-time {t}\n bgp graceful-restart preserve-fw-state"
        );
    }
    for n in &bgp.neighbors {
        let a = n.address;
        let _ = writeln!(s, " neighbor {a} remote-as {}", n.asn);
        if let Some(h) = n.hold_time {
            let k = n.keepalive.unwrap_or(h / 3);
            let _ = writeln!(s, " neighbor {a} timers {k} {h}");
        }
        let _ = writeln!(
            s,
            " neighbor {a} timers connect {}",
            n.connect_retry_or_default()
        );
        if let Some(ttl) = n.multihop {
            let _ = writeln!(s, " neighbor {a} ebgp-multihop {ttl}");
        }
        if let Some(p) = &n.password {
            let _ = writeln!(
                s,
                " neighbor {a} password {}",
                plain_str(p).replace(' ', "")
            );
        }
    }
    for (family, is_v6) in [("ipv4", false), ("ipv6", true)] {
        let prefixes: Vec<_> = bgp
            .announce
            .iter()
            .filter(|p| p.addr().is_ipv6() == is_v6)
            .collect();
        let _ = writeln!(s, " !\n address-family {family} unicast");
        for p in prefixes {
            let _ = writeln!(s, "  network {p}");
        }
        for n in &bgp.neighbors {
            let (mut v4, v6) = families(bgp, n);
            if n.families.is_empty() {
                // An IPv6 session carries IPv6 only unless told otherwise.
                v4 = n.address.is_ipv4();
            }
            let a = n.address;
            // Traditional defaults activate IPv4 for every neighbor, and nothing else.
            match (is_v6, v4, v6) {
                (false, false, _) => {
                    let _ = writeln!(s, "  no neighbor {a} activate");
                }
                (true, _, true) => {
                    let _ = writeln!(s, "  neighbor {a} activate");
                }
                _ => {}
            }
        }
        let _ = writeln!(s, " exit-address-family");
    }
    let _ = writeln!(s, "exit");
    s
}

/// zebra's configuration: it only needs a name; interfaces and addresses come from the
/// namespace's kernel.
pub fn frr_zebra_conf(hostname: &str) -> String {
    format!("hostname {}\n", plain_str(hostname))
}

/// bfdd's configuration when the topology gives none: BFD on, no profiles (bgpd's
/// `neighbor X bfd` creates the sessions, with bfdd's defaults of 300 ms x 3).
pub fn frr_bfdd_conf(hostname: &str) -> String {
    format!("hostname {}\n!\nbfd\n!\n", plain_str(hostname))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> BgpSpec {
        serde_saphyr::from_str(
            "asn: 65001\nrouter-id: 192.168.20.100\nannounce: [172.20.3.0/24, 'fd00:3::/64']\nneighbors:\n  - {address: 192.168.10.200, asn: 65000, hold-time: 9, keepalive: 3, multihop: 2, password: 's\"e\\cret', graceful-restart: 15}\n",
        )
        .unwrap()
    }

    #[test]
    fn gobgpd_config_carries_every_neighbor_setting() {
        let toml = gobgpd_toml(&spec());
        for line in [
            "as = 65001",
            "router-id = \"192.168.20.100\"",
            "port = -1",
            "neighbor-address = \"192.168.10.200\"",
            "peer-as = 65000",
            "auth-password = \"s\\\"e\\\\cret\"",
            "hold-time = 9",
            "keepalive-interval = 3",
            "connect-retry = 1",
            "multihop-ttl = 2",
            "restart-time = 15",
            "afi-safi-name = \"ipv4-unicast\"",
            "afi-safi-name = \"ipv6-unicast\"",
        ] {
            assert!(toml.contains(line), "missing {line:?} in\n{toml}");
        }
    }

    #[test]
    fn gobgpd_config_listens_only_when_asked() {
        let mut s = spec();
        s.listen = true;
        assert!(!gobgpd_toml(&s).contains("port = -1"));
    }

    #[test]
    fn bird_config_exports_only_its_static_routes() {
        let conf = bird_conf(&spec(), "/tmp/bird.log");
        for line in [
            "router id 192.168.20.100;",
            "route 172.20.3.0/24 blackhole;",
            "route fd00:3::/64 blackhole;",
            "neighbor 192.168.10.200 as 65000;",
            "hold time 9;",
            "keepalive time 3;",
            "multihop 2;",
            "password \"se\\cret\";",
            "graceful restart time 15;",
            "ipv4 { import all; export where proto = \"static4\"; };",
        ] {
            assert!(conf.contains(line), "missing {line:?} in\n{conf}");
        }
    }

    #[test]
    fn frr_config_sets_timers_and_networks() {
        let conf = frr_bgpd_conf("node4", &spec());
        for line in [
            "router bgp 65001",
            " neighbor 192.168.10.200 remote-as 65000",
            " neighbor 192.168.10.200 timers 3 9",
            " neighbor 192.168.10.200 ebgp-multihop 2",
            "  network 172.20.3.0/24",
            "  network fd00:3::/64",
            " bgp graceful-restart restart-time 15",
        ] {
            assert!(conf.contains(line), "missing {line:?} in\n{conf}");
        }
    }

    #[test]
    fn frr_config_keeps_ipv6_sessions_out_of_ipv4() {
        let s: BgpSpec = serde_saphyr::from_str(
            "asn: 65000\nrouter-id: 10.0.0.1\nneighbors: [{address: 'fd00::2', asn: 65001}]\n",
        )
        .unwrap();
        let conf = frr_bgpd_conf("tor", &s);
        let v4 = conf.find("address-family ipv4").unwrap();
        let v6 = conf.find("address-family ipv6").unwrap();
        let off = conf.find("no neighbor fd00::2 activate").unwrap();
        let on = conf.find("  neighbor fd00::2 activate").unwrap();
        assert!(v4 < off && off < v6 && v6 < on, "{conf}");
    }
}
