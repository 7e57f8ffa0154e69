//! `lb list`: what the maps hold, in the form users of `cilium bpf lb list` know —
//!
//! ```text
//! SERVICE ADDRESS     BACKEND ADDRESS (REVNAT_ID) (SLOT)
//! 172.16.1.1:80/TCP   0.0.0.0:0 (1) (0) [LoadBalancer, Local]
//!                     10.0.1.2:8080/TCP (1) (1)
//! ```
//!
//! — and as JSON. [`ListView`] is the serde form the daemon's API returns; [`render_table`]
//! is a pure function of it, so the CLI renders what the API sent.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::maps::{BackendVal, Protocol, SCOPE_INT, backend_flags, svc_flags};
use crate::store::MapsSnapshot;

/// Every frontend (one per scope) with its slots.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListView {
    /// Frontends, sorted by address, port, protocol and scope.
    pub services: Vec<ListService>,
}

/// One frontend in one scope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListService {
    /// The frontend address.
    pub address: IpAddr,
    /// The frontend port.
    pub port: u16,
    /// `TCP`, `UDP`, or the protocol number when it is neither.
    pub protocol: String,
    /// `external` or `internal`.
    pub scope: String,
    /// The reverse-NAT id.
    pub rev_nat_id: u16,
    /// Flags as `lb list` names them (`LoadBalancer`, `Local`, `two-scopes`, ...).
    pub flags: Vec<String>,
    /// Active backends (slots 1..=count).
    pub count: u16,
    /// Terminating backends (the slots after them).
    pub qcount: u16,
    /// The Maglev table, when the frontend uses one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maglev_table: Option<u16>,
    /// The backend slots, in order.
    pub backends: Vec<ListBackend>,
}

/// One backend slot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListBackend {
    /// The slot (1..).
    pub slot: u16,
    /// The backend id.
    pub id: u32,
    /// Its address, or `None` when the slot names a backend that does not exist.
    pub address: Option<IpAddr>,
    /// Its port.
    pub port: u16,
    /// `active` or `terminating`.
    pub state: String,
    /// Whether it runs on this node.
    pub local: bool,
}

fn proto_name(p: u8) -> String {
    Protocol::from_number(p).map_or_else(|| p.to_string(), |p| p.to_string())
}

/// Flag names in the order `lb list` prints them.
pub fn flag_names(flags: u16) -> Vec<String> {
    let table = [
        (svc_flags::LOADBALANCER, "LoadBalancer"),
        (svc_flags::EXTERNAL_IP, "ExternalIPs"),
        (svc_flags::CLUSTER_IP, "ClusterIP"),
        (svc_flags::LOCAL, "Local"),
        (svc_flags::INT_LOCAL, "InternalLocal"),
        (svc_flags::TWO_SCOPES, "two-scopes"),
        (svc_flags::MAGLEV, "maglev"),
    ];
    table
        .iter()
        .filter(|(bit, _)| flags & bit != 0)
        .map(|(_, n)| (*n).to_owned())
        .collect()
}

/// The view of a snapshot of the maps.
pub fn list_view(snap: &MapsSnapshot) -> ListView {
    let backends: HashMap<u32, BackendVal> = snap.backends.iter().copied().collect();
    let mut heads = BTreeMap::new();
    let mut slots: HashMap<_, BTreeMap<u16, u32>> = HashMap::new();
    for (k, v) in &snap.services {
        let id = (k.addr.ip(), k.port(), k.proto, k.scope);
        if k.slot == 0 {
            heads.insert(id, *v);
        } else {
            slots.entry(id).or_default().insert(k.slot, v.backend_id);
        }
    }
    let services = heads
        .into_iter()
        .map(|((address, port, proto, scope), head)| {
            let list = slots
                .remove(&(address, port, proto, scope))
                .unwrap_or_default();
            let backends = list
                .into_iter()
                .map(|(slot, id)| {
                    let b = backends.get(&id);
                    ListBackend {
                        slot,
                        id,
                        address: b.map(|b| b.addr.ip()),
                        port: b.map_or(0, BackendVal::port),
                        state: if slot > head.count
                            || b.is_some_and(|b| b.flags & backend_flags::TERMINATING != 0)
                        {
                            "terminating".into()
                        } else {
                            "active".into()
                        },
                        local: b.is_some_and(|b| b.flags & backend_flags::LOCAL != 0),
                    }
                })
                .collect();
            ListService {
                address,
                port,
                protocol: proto_name(proto),
                scope: if scope == SCOPE_INT {
                    "internal".into()
                } else {
                    "external".into()
                },
                rev_nat_id: head.rev_nat_id,
                flags: flag_names(head.flags),
                count: head.count,
                qcount: head.qcount,
                maglev_table: (head.flags & svc_flags::MAGLEV != 0).then_some(head.maglev_slot),
                backends,
            }
        })
        .collect();
    ListView { services }
}

fn host_port(a: IpAddr, port: u16) -> String {
    match a {
        IpAddr::V4(a) => format!("{a}:{port}"),
        IpAddr::V6(a) => format!("[{a}]:{port}"),
    }
}

/// The table `lb list` prints.
pub fn render_table(view: &ListView) -> String {
    let mut rows: Vec<(String, String)> = Vec::new();
    for s in &view.services {
        let mut svc = format!("{}/{}", host_port(s.address, s.port), s.protocol);
        if s.scope == "internal" {
            svc.push_str("/i");
        }
        let zero = if s.address.is_ipv4() {
            "0.0.0.0:0"
        } else {
            "[::]:0"
        };
        let mut head = format!("{zero} ({}) (0)", s.rev_nat_id);
        if !s.flags.is_empty() {
            let _ = write!(head, " [{}]", s.flags.join(", "));
        }
        rows.push((svc, head));
        for b in &s.backends {
            let addr = match b.address {
                Some(a) => format!("{}/{}", host_port(a, b.port), s.protocol),
                None => format!("backend {} missing", b.id),
            };
            let mut line = format!("{addr} ({}) ({})", s.rev_nat_id, b.slot);
            if b.state == "terminating" {
                line.push_str(" [terminating]");
            }
            rows.push((String::new(), line));
        }
    }
    let first = "SERVICE ADDRESS";
    let width = rows
        .iter()
        .map(|(a, _)| a.len())
        .chain([first.len()])
        .max()
        .unwrap_or(0)
        + 3;
    let mut out = format!("{first:<width$}BACKEND ADDRESS (REVNAT_ID) (SLOT)\n");
    for (a, b) in rows {
        let _ = writeln!(out, "{a:<width$}{b}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{BackendState, DesiredState, Frontend, TrafficPolicy};
    use crate::plan::{Limits, Programmer};
    use crate::store::{MapStore, MemoryMaps};

    fn maps_for(frontends: Vec<Frontend>) -> MemoryMaps {
        let mut p = Programmer::new(Limits {
            maglev_m: 251,
            maglev_tables: 2,
        });
        let mut m = MemoryMaps::new();
        let (ops, errors) = p.plan(&DesiredState::from_frontends(frontends));
        assert!(errors.is_empty());
        m.apply(&ops).unwrap();
        m
    }

    #[test]
    fn the_table_has_the_columns_and_lines_users_know() {
        let mut f = Frontend::new("172.16.1.1".parse().unwrap(), 80, Protocol::Tcp)
            .backend("10.0.1.2".parse().unwrap(), 8080, true)
            .backend("10.0.1.3".parse().unwrap(), 8080, true);
        f.external_policy = TrafficPolicy::Local;
        f.internal_policy = TrafficPolicy::Local;
        f.backends[1].state = BackendState::Terminating;
        let v6 = Frontend::new("fd00:1::1".parse().unwrap(), 53, Protocol::Udp).backend(
            "fd00:2::5".parse().unwrap(),
            5353,
            false,
        );
        let text = render_table(&list_view(&maps_for(vec![f, v6]).snapshot().unwrap()));
        let expected = "\
SERVICE ADDRESS      BACKEND ADDRESS (REVNAT_ID) (SLOT)
172.16.1.1:80/TCP    0.0.0.0:0 (1) (0) [LoadBalancer, Local, InternalLocal]
                     10.0.1.2:8080/TCP (1) (1)
                     10.0.1.3:8080/TCP (1) (2) [terminating]
[fd00:1::1]:53/UDP   [::]:0 (2) (0) [LoadBalancer]
                     [fd00:2::5]:5353/UDP (2) (1)
";
        assert_eq!(text, expected, "\n{text}");
    }

    #[test]
    fn two_scopes_show_the_internal_one_with_a_suffix() {
        let mut f = Frontend::new("172.16.1.1".parse().unwrap(), 80, Protocol::Tcp)
            .backend("10.0.1.2".parse().unwrap(), 8080, true)
            .backend("10.0.2.2".parse().unwrap(), 8080, false);
        f.external_policy = TrafficPolicy::Local;
        let text = render_table(&list_view(&maps_for(vec![f]).snapshot().unwrap()));
        assert!(text.contains("172.16.1.1:80/TCP/i"), "{text}");
        assert!(text.contains("[LoadBalancer, Local, two-scopes]"), "{text}");
    }

    #[test]
    fn the_json_form_round_trips_and_names_every_field() {
        let f = Frontend::new("172.16.1.1".parse().unwrap(), 80, Protocol::Tcp).backend(
            "10.0.1.2".parse().unwrap(),
            8080,
            true,
        );
        let view = list_view(&maps_for(vec![f]).snapshot().unwrap());
        let json = serde_json::to_value(&view).unwrap();
        let s = &json["services"][0];
        assert_eq!(s["address"], "172.16.1.1");
        assert_eq!(s["protocol"], "TCP");
        assert_eq!(s["flags"][0], "LoadBalancer");
        assert_eq!(s["backends"][0]["address"], "10.0.1.2");
        assert_eq!(s["backends"][0]["state"], "active");
        let back: ListView = serde_json::from_value(json).unwrap();
        assert_eq!(back, view);
    }

    #[test]
    fn an_empty_dataplane_prints_the_header_only() {
        assert_eq!(
            render_table(&ListView::default()),
            "SERVICE ADDRESS   BACKEND ADDRESS (REVNAT_ID) (SLOT)\n"
        );
    }
}
