//! `lbspeaker bgp decode`: BGP messages to JSON, for people debugging captured sessions.
//!
//! Input is hex (arguments, else standard input; whitespace, `:` and a `0x` prefix are
//! ignored; one or more messages, each with or without its 16-octet marker) or a pcap /
//! pcapng file, whose TCP port 179 streams are reassembled ([`super::pcap`]). Output is one
//! JSON object per message: where it came from, its type and fields, and for a malformed
//! message the RFC 7606 action and the NOTIFICATION a speaker would send. In a capture, each
//! connection is decoded with what its two OPENs negotiated once both are seen.

use std::collections::HashMap;
use std::io::{Read as _, Write as _};
use std::path::PathBuf;

use anyhow::Context as _;
use bgp::wire::{DecodeContext, Family, FamilySet, Message, Negotiated, Open};
use serde_json::{Value, json};

use super::pcap::{Segment, read_tcp_streams};

/// Arguments of `bgp decode`.
#[derive(Debug, Clone, clap::Args)]
pub struct DecodeArgs {
    /// Messages in hex (with or without the marker); read from standard input when absent.
    pub hex: Vec<String>,
    /// Read a pcap or pcapng capture instead and decode its BGP streams.
    #[arg(long, value_name = "FILE", conflicts_with = "hex")]
    pub pcap: Option<PathBuf>,
    /// TCP port of the BGP streams in a capture.
    #[arg(long, default_value_t = 179)]
    pub port: u16,
    /// Decode AS numbers as 2 octets (sessions without the 4-octet AS capability).
    #[arg(long)]
    pub two_octet_as: bool,
    /// Families whose NLRI carry add-path identifiers (ipv4-unicast, ipv6-unicast, ...).
    #[arg(long, value_name = "FAMILY", value_parser = parse_family)]
    pub add_path: Vec<Family>,
}

fn parse_family(s: &str) -> Result<Family, String> {
    Ok(match s {
        "ipv4-unicast" | "ipv4" => Family::IPV4_UNICAST,
        "ipv6-unicast" | "ipv6" => Family::IPV6_UNICAST,
        "ipv4-multicast" => Family::IPV4_MULTICAST,
        "ipv6-multicast" => Family::IPV6_MULTICAST,
        _ => {
            return Err(format!(
                "unknown family {s:?} (ipv4-unicast, ipv6-unicast, ipv4-multicast, ipv6-multicast)"
            ));
        }
    })
}

impl DecodeArgs {
    /// The context for messages whose session is unknown: permissive, adjusted by flags.
    fn base_context(&self) -> DecodeContext {
        DecodeContext {
            four_octet_as: !self.two_octet_as,
            add_path: FamilySet::of(&self.add_path),
            ..DecodeContext::permissive()
        }
    }
}

/// Runs the command, printing one JSON object per line.
pub fn run(args: &DecodeArgs) -> anyhow::Result<()> {
    let objects = match &args.pcap {
        Some(path) => {
            let file = std::fs::File::open(path)
                .with_context(|| format!("cannot open {}", path.display()))?;
            decode_capture(file, args)?
        }
        None => {
            let text = if args.hex.is_empty() {
                let mut s = String::new();
                std::io::stdin().read_to_string(&mut s)?;
                s
            } else {
                args.hex.join(" ")
            };
            decode_hex(&text, args)?
        }
    };
    let mut out = std::io::stdout().lock();
    for o in objects {
        writeln!(out, "{o}")?;
    }
    Ok(())
}

/// Decodes hex text holding one or more messages.
pub fn decode_hex(text: &str, args: &DecodeArgs) -> anyhow::Result<Vec<Value>> {
    let cleaned: String = text
        .split_whitespace()
        .map(|w| w.strip_prefix("0x").unwrap_or(w))
        .collect::<String>()
        .replace(':', "");
    let bytes = hex::decode(&cleaned).context("input is not hex")?;
    let ctx = args.base_context();
    let mut out = Vec::new();
    let mut rest = bytes.as_slice();
    while !rest.is_empty() {
        // Without its marker, a message starts with its length.
        let marked = rest.len() >= 16 && rest.iter().take(16).all(|b| *b == 0xff);
        let mut msg = Vec::with_capacity(rest.len() + 16);
        if !marked {
            msg.extend_from_slice(&[0xff; 16]);
        }
        msg.extend_from_slice(rest);
        let len = match Message::frame_len(&msg, &ctx) {
            Ok(Some(len)) if len <= msg.len() => len,
            // Not a whole message: decode what there is, to report why.
            _ => msg.len(),
        };
        let taken = if marked { len } else { len.saturating_sub(16) };
        msg.truncate(len);
        out.push(describe(&msg, &ctx, json!({ "index": out.len() })));
        rest = rest.get(taken.max(1)..).unwrap_or_default();
    }
    Ok(out)
}

/// The JSON object of one message: `extra` fields, then the message or its error.
pub fn describe(bytes: &[u8], ctx: &DecodeContext, extra: Value) -> Value {
    let mut o = match extra {
        Value::Object(m) => m,
        _ => serde_json::Map::new(),
    };
    o.insert("length".into(), json!(bytes.len()));
    match Message::decode(bytes, ctx) {
        Ok(m) => {
            if let Message::Update(u) = &m {
                if let Some(a) = u.rfc7606_action() {
                    o.insert("rfc7606_action".into(), json!(a));
                }
                if let Some(f) = u.end_of_rib_family() {
                    o.insert("end_of_rib".into(), json!(f));
                }
            }
            match serde_json::to_value(&m) {
                Ok(v) => o.insert("message".into(), v),
                Err(e) => o.insert("message_error".into(), json!(e.to_string())),
            };
        }
        Err(e) => {
            o.insert("error".into(), json!(e.kind.to_string()));
            o.insert("offset".into(), json!(e.offset));
            o.insert("rfc7606_action".into(), json!(e.action()));
            o.insert(
                "notification".into(),
                serde_json::to_value(e.notification()).unwrap_or(Value::Null),
            );
            o.insert("hex".into(), json!(hex::encode(bytes)));
        }
    }
    Value::Object(o)
}

/// What is known about one TCP connection: each side's OPEN, keyed by sender.
#[derive(Default)]
struct Connection {
    opens: HashMap<String, Open>,
}

/// Decodes every BGP message of a capture, in capture order.
pub fn decode_capture(input: impl std::io::Read, args: &DecodeArgs) -> anyhow::Result<Vec<Value>> {
    let base = args.base_context();
    let mut connections: HashMap<(String, String), Connection> = HashMap::new();
    let mut out = Vec::new();
    read_tcp_streams(input, args.port, |seg: Segment<'_>| {
        let key = if seg.src < seg.dst {
            (seg.src.to_owned(), seg.dst.to_owned())
        } else {
            (seg.dst.to_owned(), seg.src.to_owned())
        };
        let conn = connections.entry(key).or_default();
        let ctx = match (conn.opens.get(seg.dst), conn.opens.get(seg.src)) {
            (Some(receiver), Some(sender)) => Negotiated::from_opens(receiver, sender).decode,
            _ => base,
        };
        let extra = json!({
            "index": out.len(),
            "time": seg.time.as_secs_f64(),
            "from": seg.src,
            "to": seg.dst,
        });
        if seg.message.get(18) == Some(&1)
            && let Ok(Message::Open(o)) = Message::decode(seg.message, &base)
        {
            conn.opens.insert(seg.src.to_owned(), o);
        }
        out.push(describe(seg.message, &ctx, extra));
    })?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;

    #[derive(clap::Parser)]
    struct T {
        #[command(flatten)]
        args: DecodeArgs,
    }

    fn args(a: &[&str]) -> DecodeArgs {
        let mut v = vec!["t"];
        v.extend_from_slice(a);
        T::parse_from(v).args
    }

    #[test]
    fn a_keepalive_without_its_marker_decodes() {
        let out = decode_hex("00 13 04", &args(&[])).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0]["message"]["type"], "KEEPALIVE");
    }

    #[test]
    fn several_messages_in_one_hex_string_are_split() {
        let ka = "ffffffffffffffffffffffffffffffff001304";
        let eor = "ffffffffffffffffffffffffffffffff00170200000000";
        let out = decode_hex(&format!("{ka}{eor} 0x{ka}"), &args(&[])).unwrap();
        assert_eq!(out.len(), 3);
        assert_eq!(out[1]["end_of_rib"], "ipv4-unicast");
    }

    #[test]
    fn a_malformed_message_shows_its_action_and_notification() {
        // UPDATE whose path attributes claim 9 octets but carry none.
        let out = decode_hex("0017 02 0000 0009", &args(&[])).unwrap();
        assert_eq!(out[0]["rfc7606_action"], "session-reset");
        assert_eq!(out[0]["notification"]["code"], 3);
        assert_eq!(
            out[0]["notification"]["subcode_name"],
            "Malformed Attribute List"
        );
        assert_eq!(out[0]["offset"], 21);
    }

    #[test]
    fn treat_as_withdraw_updates_say_so_and_keep_their_prefixes() {
        // ORIGIN 5 (undefined), AS_PATH empty, NEXT_HOP, NLRI 10.0.0.0/8.
        let out = decode_hex(
            "0027 02 0000 000e 40010105 400200 4003040a000001 080a",
            &args(&[]),
        )
        .unwrap();
        assert_eq!(out[0]["rfc7606_action"], "treat-as-withdraw", "{}", out[0]);
        assert_eq!(out[0]["message"]["nlri"][0], "10.0.0.0/8");
    }

    #[test]
    fn add_path_and_two_octet_flags_change_the_context() {
        let a = args(&["--two-octet-as", "--add-path", "ipv4-unicast"]);
        let ctx = a.base_context();
        assert!(!ctx.four_octet_as);
        assert!(ctx.add_path.contains(Family::IPV4_UNICAST));
    }
}
