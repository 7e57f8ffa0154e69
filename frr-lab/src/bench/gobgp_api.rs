//! gobgpd's own API for workload 1: one `AddPathStream` call (gRPC over plaintext HTTP/2)
//! carrying every service address, as a program driving GoBGP (Cilium's agent) does.
//!
//! The `gobgp` CLI has no way to add many paths in one call that works on 3.10 (`gobgp mrt
//! inject global` returns success and adds nothing here), and a process per route would
//! measure process start-up, not gobgpd. The few protobuf messages needed are encoded by
//! hand (GoBGP 3.x's `apipb` schema: `AddPathStreamRequest { table_type = 1, vrf_id = 2,
//! repeated Path paths = 3 }`, `Path { Any nlri = 1, repeated Any pattrs = 2, Family family =
//! 9 }`), so the harness needs no protobuf compiler.

use std::net::{Ipv4Addr, SocketAddr};

use bytes::Bytes;
use ipnet::IpNet;

use super::BenchError;
use crate::lab::in_netns;

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn field_varint(out: &mut Vec<u8>, field: u32, v: u64) {
    varint(out, u64::from(field) << 3);
    varint(out, v);
}

fn field_bytes(out: &mut Vec<u8>, field: u32, v: &[u8]) {
    varint(out, (u64::from(field) << 3) | 2);
    varint(out, v.len() as u64);
    out.extend_from_slice(v);
}

/// `google.protobuf.Any { type_url = 1, value = 2 }` for an `apipb` message.
fn any(name: &str, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    field_bytes(
        &mut out,
        1,
        format!("type.googleapis.com/apipb.{name}").as_bytes(),
    );
    field_bytes(&mut out, 2, value);
    out
}

/// One IPv4 unicast path: the prefix, origin IGP, next hop 0.0.0.0 (gobgpd's own address
/// when it sends), as `gobgp global rib add PREFIX origin igp` makes it.
fn path(prefix: &IpNet) -> Vec<u8> {
    let mut nlri = Vec::new();
    field_varint(&mut nlri, 1, u64::from(prefix.prefix_len()));
    field_bytes(&mut nlri, 2, prefix.network().to_string().as_bytes());
    let origin = Vec::new(); // OriginAttribute { origin = 0 (IGP) }: the default, no field
    let mut next_hop = Vec::new();
    field_bytes(
        &mut next_hop,
        1,
        Ipv4Addr::UNSPECIFIED.to_string().as_bytes(),
    );
    let mut family = Vec::new();
    field_varint(&mut family, 1, 1); // AFI_IP
    field_varint(&mut family, 2, 1); // SAFI_UNICAST
    let mut p = Vec::new();
    field_bytes(&mut p, 1, &any("IPAddressPrefix", &nlri));
    field_bytes(&mut p, 2, &any("OriginAttribute", &origin));
    field_bytes(&mut p, 2, &any("NextHopAttribute", &next_hop));
    field_bytes(&mut p, 9, &family);
    p
}

/// The gRPC body of one `AddPathStreamRequest` (table GLOBAL = 0, the default) with every
/// prefix: the 5-octet length prefix, then the message.
pub fn add_path_stream_body(prefixes: &[IpNet]) -> Vec<u8> {
    let mut msg = Vec::with_capacity(prefixes.len() * 140);
    for p in prefixes {
        field_bytes(&mut msg, 3, &path(p));
    }
    let mut body = Vec::with_capacity(msg.len() + 5);
    body.push(0);
    body.extend_from_slice(&(msg.len() as u32).to_be_bytes());
    body.extend_from_slice(&msg);
    body
}

/// Sends every prefix to gobgpd's API at `api` inside namespace `ns` in one
/// `AddPathStream` and waits for its answer (gobgpd has taken them into its RIB).
pub fn add_paths(ns: &str, api: SocketAddr, prefixes: &[IpNet]) -> Result<(), BenchError> {
    let body = Bytes::from(add_path_stream_body(prefixes));
    let stream = in_netns(ns, move || std::net::TcpStream::connect(api)).map_err(
        BenchError::io(format!("cannot reach gobgpd's API at {api}")),
    )?;
    stream
        .set_nonblocking(true)
        .map_err(BenchError::io("socket option"))?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(BenchError::io("tokio runtime"))?;
    let failed = |what: &str, e: &dyn std::fmt::Display| {
        BenchError::Failed(format!("gobgpd API AddPathStream: {what}: {e}"))
    };
    rt.block_on(async move {
        let tcp = tokio::net::TcpStream::from_std(stream).map_err(|e| failed("socket", &e))?;
        let (client, conn) = h2::client::handshake(tcp)
            .await
            .map_err(|e| failed("HTTP/2 handshake", &e))?;
        let driver = tokio::spawn(conn);
        let mut client = client.ready().await.map_err(|e| failed("ready", &e))?;
        let req = http::Request::post(format!("http://{api}/apipb.GobgpApi/AddPathStream"))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(())
            .map_err(|e| failed("request", &e))?;
        let (resp, mut send) = client
            .send_request(req, false)
            .map_err(|e| failed("send", &e))?;
        send.send_data(body, true)
            .map_err(|e| failed("send data", &e))?;
        let resp = resp.await.map_err(|e| failed("response", &e))?;
        let status_of = |h: &http::HeaderMap| {
            h.get("grpc-status")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let message_of = |h: &http::HeaderMap| {
            h.get("grpc-message")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned()
        };
        let (head, mut recv) = resp.into_parts();
        // A trailers-only answer carries the status in the headers.
        let (status, message) = match status_of(&head.headers) {
            Some(s) => (s, message_of(&head.headers)),
            None => {
                while let Some(chunk) = recv.data().await {
                    let chunk = chunk.map_err(|e| failed("body", &e))?;
                    let _ = recv.flow_control().release_capacity(chunk.len());
                }
                let trailers = recv
                    .trailers()
                    .await
                    .map_err(|e| failed("trailers", &e))?
                    .unwrap_or_default();
                (
                    status_of(&trailers).unwrap_or_else(|| "none".into()),
                    message_of(&trailers),
                )
            }
        };
        driver.abort();
        if status != "0" {
            return Err(BenchError::Failed(format!(
                "gobgpd API AddPathStream: grpc-status {status} {message}"
            )));
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_are_little_endian_groups_of_seven_bits() {
        let mut v = Vec::new();
        varint(&mut v, 1);
        varint(&mut v, 300);
        varint(&mut v, 0);
        assert_eq!(v, [1, 0xac, 0x02, 0]);
    }

    #[test]
    fn a_stream_request_is_one_grpc_frame_with_one_path_per_prefix() {
        let p: Vec<IpNet> = vec![
            "10.96.0.1/32".parse().unwrap(),
            "10.96.0.2/32".parse().unwrap(),
        ];
        let body = add_path_stream_body(&p);
        assert_eq!(body[0], 0, "not compressed");
        let len = u32::from_be_bytes([body[1], body[2], body[3], body[4]]) as usize;
        assert_eq!(body.len(), 5 + len);
        let msg = &body[5..];
        // Field 3, wire type 2: a Path, twice.
        assert_eq!(msg[0], (3 << 3) | 2);
        let one = path(&p[0]);
        let mut len = Vec::new();
        varint(&mut len, one.len() as u64);
        assert_eq!(msg.len(), 2 * (1 + len.len() + one.len()));
        let text = String::from_utf8_lossy(msg);
        assert!(text.contains("type.googleapis.com/apipb.IPAddressPrefix"));
        assert!(text.contains("type.googleapis.com/apipb.NextHopAttribute"));
        assert!(text.contains("10.96.0.1") && text.contains("10.96.0.2"));
        // The NLRI: prefix_len 32 (field 1), then the address as a string (field 2).
        let nlri: Vec<u8> = [vec![0x08, 32, 0x12, 9], b"10.96.0.1".to_vec()].concat();
        assert!(one.windows(nlri.len()).any(|w| w == nlri.as_slice()));
    }
}
