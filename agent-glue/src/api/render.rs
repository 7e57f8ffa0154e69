//! Turning API views into the tables users know from the Cilium CLI, or JSON (`-o json`).

use comfy_table::{CellAlignment, ColumnConstraint, Table, presets};

use super::{
    LeaseView, PeerView, PolicyView, PoolView, RouteTable, RouteView, ServiceView, StatusView,
};

/// `-o table` (default) or `-o json`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    /// Aligned columns.
    #[default]
    Table,
    /// The API's JSON, pretty-printed.
    Json,
}

/// A duration the way Go (and so the Cilium CLI) prints it: `45s`, `2m15s`, `3h0m7s`.
pub fn go_duration(seconds: u64) -> String {
    let (h, m, s) = (seconds / 3600, (seconds % 3600) / 60, seconds % 60);
    if h > 0 {
        format!("{h}h{m}m{s}s")
    } else if m > 0 {
        format!("{m}m{s}s")
    } else {
        format!("{s}s")
    }
}

fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_preset(presets::NOTHING);
    t.set_header(header.iter().map(|h| h.to_string()));
    for c in t.column_iter_mut() {
        c.set_padding((0, 3));
        c.set_cell_alignment(CellAlignment::Left);
        c.set_constraint(ColumnConstraint::ContentWidth);
    }
    t
}

fn finish(t: Table) -> String {
    // comfy-table pads the last column too; users' tools split on whitespace, so trim.
    let mut out: String = t
        .lines()
        .map(|l| l.trim_end().to_owned())
        .collect::<Vec<_>>()
        .join("\n");
    out.push('\n');
    out
}

/// `lbspeaker bgp peers`: one row per session and family.
pub fn peers(rows: &[PeerView]) -> String {
    let mut t = table(&[
        "Node",
        "Local AS",
        "Peer AS",
        "Peer Address",
        "Session State",
        "Uptime",
        "Family",
        "Received",
        "Advertised",
    ]);
    for p in rows {
        let uptime = p
            .uptime_seconds
            .map(go_duration)
            .unwrap_or_else(|| "0s".into());
        let families: Vec<(String, String, String)> = if p.families.is_empty() {
            vec![("-".into(), "0".into(), "0".into())]
        } else {
            p.families
                .iter()
                .map(|f| {
                    (
                        format!("{}/{}", f.afi, f.safi),
                        f.received.to_string(),
                        f.advertised.to_string(),
                    )
                })
                .collect()
        };
        for (i, (family, rx, tx)) in families.into_iter().enumerate() {
            let first = i == 0;
            let cell = |s: String| if first { s } else { String::new() };
            t.add_row(vec![
                cell(p.node.clone()),
                cell(p.local_asn.to_string()),
                cell(p.peer_asn.to_string()),
                cell(p.peer_address.clone()),
                cell(p.session_state.clone()),
                cell(uptime.clone()),
                family,
                rx,
                tx,
            ]);
        }
    }
    finish(t)
}

/// `lbspeaker bgp routes available|advertised AFI SAFI`.
pub fn routes(kind: RouteTable, rows: &[RouteView]) -> String {
    let mut header = vec!["Node", "VRouter"];
    if kind == RouteTable::Advertised {
        header.push("Peer");
    }
    header.extend(["Prefix", "NextHop", "Age", "Attrs"]);
    let mut t = table(&header);
    for r in rows {
        let mut row = vec![r.node.clone(), r.vrouter.to_string()];
        if kind == RouteTable::Advertised {
            row.push(r.peer.clone().unwrap_or_default());
        }
        row.extend([
            r.prefix.clone(),
            r.next_hop.clone(),
            go_duration(r.age_seconds),
            format!("[{}]", r.attrs.join(" ")),
        ]);
        t.add_row(row);
    }
    finish(t)
}

/// `lbspeaker bgp route-policies`.
pub fn policies(rows: &[PolicyView]) -> String {
    let mut t = table(&[
        "VRouter",
        "Policy Name",
        "Type",
        "Match Peers",
        "Match Prefixes",
        "RIB Action",
        "Path Actions",
    ]);
    for p in rows {
        t.add_row(vec![
            p.vrouter.to_string(),
            p.name.clone(),
            p.kind.clone(),
            p.match_peers.join(", "),
            p.match_prefixes.join(", "),
            p.rib_action.clone(),
            p.path_actions.join(", "),
        ]);
    }
    finish(t)
}

/// `lbspeaker ipam pools`: the columns of `kubectl get ippools` plus used and total.
pub fn pools(rows: &[PoolView]) -> String {
    let mut t = table(&[
        "Name",
        "Disabled",
        "Conflicting",
        "IPs Available",
        "IPs Used",
        "IPs Total",
    ]);
    for p in rows {
        t.add_row(vec![
            p.name.clone(),
            p.disabled.to_string(),
            p.conflicting.to_string(),
            p.ips_available.clone(),
            p.ips_used.clone(),
            p.ips_total.clone(),
        ]);
    }
    finish(t)
}

/// `lbspeaker ipam services`.
pub fn services(rows: &[ServiceView]) -> String {
    let mut t = table(&["Namespace", "Name", "Addresses", "Status", "Message"]);
    for s in rows {
        t.add_row(vec![
            s.namespace.clone(),
            s.name.clone(),
            if s.addresses.is_empty() {
                "<pending>".into()
            } else {
                s.addresses.join(",")
            },
            s.reason.clone(),
            s.message.clone(),
        ]);
    }
    finish(t)
}

/// `lbspeaker l2 leases`.
pub fn leases(rows: &[LeaseView]) -> String {
    let mut t = table(&[
        "Address",
        "Services",
        "Lease",
        "Holder",
        "Interfaces",
        "Since",
        "This Node",
    ]);
    for l in rows {
        t.add_row(vec![
            l.address.clone(),
            l.services.join(","),
            l.lease.clone(),
            l.holder.clone().unwrap_or_else(|| "-".into()),
            if l.interfaces.is_empty() {
                "-".into()
            } else {
                l.interfaces.join(",")
            },
            l.since_seconds
                .map(go_duration)
                .unwrap_or_else(|| "-".into()),
            if l.announcing {
                "announcing"
            } else if l.eligible {
                "candidate"
            } else {
                "not eligible"
            }
            .into(),
        ]);
    }
    finish(t)
}

/// `lbspeaker status`.
pub fn status(s: &StatusView) -> String {
    let mut out = format!(
        "Node:       {}\nVersion:    {}\nUptime:     {}\nSource:     {}\nRoles:      {}\nReady:      {}\nBGP peers:  {}/{} established\n",
        s.node,
        s.version,
        go_duration(s.uptime_seconds),
        s.source,
        s.roles.join(", "),
        if s.ready {
            "yes"
        } else {
            "no (first reconcile not finished)"
        },
        s.peers_established,
        s.peers_total,
    );
    if s.problems.is_empty() {
        out.push_str("Problems:   none\n");
    } else {
        out.push_str("Problems:\n");
        for p in &s.problems {
            out.push_str(&format!("  - {p}\n"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::FamilyCounters;

    #[test]
    fn go_durations_read_like_the_cilium_cli() {
        assert_eq!(go_duration(0), "0s");
        assert_eq!(go_duration(135), "2m15s");
        assert_eq!(go_duration(437), "7m17s");
        assert_eq!(go_duration(3 * 3600 + 7), "3h0m7s");
    }

    fn peer(families: Vec<FamilyCounters>) -> PeerView {
        PeerView {
            node: "node1".into(),
            instance: "instance-65001".into(),
            name: "tor-switch".into(),
            local_asn: 65001,
            peer_asn: 65000,
            peer_address: "192.168.10.200".into(),
            session_state: "established".into(),
            uptime_seconds: Some(135),
            hold_time_seconds: 9,
            keepalive_seconds: 3,
            families,
            last_error: None,
        }
    }

    #[test]
    fn peers_table_has_the_cilium_columns_and_a_row_per_family() {
        let fam = |afi: &str, rx, tx| FamilyCounters {
            afi: afi.into(),
            safi: "unicast".into(),
            received: rx,
            advertised: tx,
        };
        let out = peers(&[peer(vec![fam("ipv4", 4, 2), fam("ipv6", 0, 1)])]);
        let lines: Vec<Vec<&str>> = out
            .lines()
            .map(|l| l.split_whitespace().collect())
            .collect();
        assert_eq!(
            lines[0],
            [
                "Node",
                "Local",
                "AS",
                "Peer",
                "AS",
                "Peer",
                "Address",
                "Session",
                "State",
                "Uptime",
                "Family",
                "Received",
                "Advertised"
            ]
        );
        assert_eq!(
            lines[1],
            [
                "node1",
                "65001",
                "65000",
                "192.168.10.200",
                "established",
                "2m15s",
                "ipv4/unicast",
                "4",
                "2"
            ]
        );
        assert_eq!(lines[2], ["ipv6/unicast", "0", "1"]);
        // Columns line up: every value starts under its header.
        let header = out.lines().next().unwrap();
        let row = out.lines().nth(1).unwrap();
        assert_eq!(header.find("Family"), row.find("ipv4/unicast"));
    }

    #[test]
    fn a_peer_without_families_still_gets_a_row() {
        let out = peers(&[peer(vec![])]);
        assert_eq!(out.lines().count(), 2);
        assert!(out.lines().nth(1).unwrap().contains(" - "));
    }

    #[test]
    fn advertised_routes_name_the_peer_and_available_ones_do_not() {
        let r = RouteView {
            node: "node1".into(),
            vrouter: 65001,
            peer: Some("192.168.10.200".into()),
            prefix: "172.20.0.0/24".into(),
            next_hop: "0.0.0.0".into(),
            age_seconds: 437,
            best: true,
            attrs: vec!["{Origin: i}".into(), "{Nexthop: 0.0.0.0}".into()],
        };
        let avail = routes(RouteTable::Available, std::slice::from_ref(&r));
        let header: Vec<&str> = avail.lines().next().unwrap().split_whitespace().collect();
        assert_eq!(
            header,
            ["Node", "VRouter", "Prefix", "NextHop", "Age", "Attrs"]
        );
        assert!(
            avail.contains("7m17s   [{Origin: i} {Nexthop: 0.0.0.0}]"),
            "{avail}"
        );
        let adv = routes(RouteTable::Advertised, &[r]);
        assert!(
            adv.contains("Peer") && adv.contains("192.168.10.200"),
            "{adv}"
        );
    }
}
