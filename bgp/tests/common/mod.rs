//! Reading the golden vectors of `tests/vectors/*.txt` and the contexts of their sessions.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::Path;

use bgp::wire::{DecodeContext, EncodeContext, Message, Negotiated, Open};

/// One captured message.
#[derive(Debug, Clone)]
pub struct Captured {
    /// Vector file stem (`frr-gobgp`).
    pub file: String,
    /// TCP stream number in the capture.
    pub stream: u32,
    /// Sender, `addr:port`.
    pub src: String,
    /// Receiver, `addr:port`.
    pub dst: String,
    /// The message.
    pub bytes: Vec<u8>,
}

/// Every vector file, in name order.
pub const FILES: [&str; 3] = ["frr-bird", "frr-gobgp", "gobgp-bird"];

pub fn load(file: &str) -> Vec<Captured> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/vectors")
        .join(format!("{file}.txt"));
    let text = std::fs::read_to_string(&path).unwrap();
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            Captured {
                file: file.to_owned(),
                stream: f[0].parse().unwrap(),
                src: f[1].to_owned(),
                dst: f[2].to_owned(),
                bytes: hex::decode(f[3]).unwrap(),
            }
        })
        .collect()
}

pub fn load_all() -> Vec<Captured> {
    FILES.iter().flat_map(|f| load(f)).collect()
}

/// The OPEN each sender sent in each stream.
pub fn opens(msgs: &[Captured]) -> BTreeMap<(String, u32, String), Open> {
    let mut out = BTreeMap::new();
    for m in msgs {
        if m.bytes.get(18) == Some(&1)
            && let Ok(Message::Open(o)) = Message::decode(&m.bytes, &DecodeContext::default())
        {
            out.insert((m.file.clone(), m.stream, m.src.clone()), o);
        }
    }
    out
}

/// (decode context of the receiver, encode context of the sender) for a captured message;
/// before both OPENs are known, the defaults.
pub fn contexts(
    opens: &BTreeMap<(String, u32, String), Open>,
    m: &Captured,
) -> (DecodeContext, EncodeContext) {
    let sender = opens.get(&(m.file.clone(), m.stream, m.src.clone()));
    let receiver = opens.get(&(m.file.clone(), m.stream, m.dst.clone()));
    match (sender, receiver) {
        (Some(s), Some(r)) => (
            Negotiated::from_opens(r, s).decode,
            Negotiated::from_opens(s, r).encode,
        ),
        _ => (DecodeContext::default(), EncodeContext::default()),
    }
}

/// Decodes every captured message with its session's context.
pub fn decode_all() -> Vec<(Captured, Message)> {
    let msgs = load_all();
    let opens = opens(&msgs);
    msgs.iter()
        .map(|m| {
            let (d, _) = contexts(&opens, m);
            let msg = Message::decode(&m.bytes, &d)
                .unwrap_or_else(|e| panic!("{} {} -> {}: {e}", m.file, m.src, m.dst));
            (m.clone(), msg)
        })
        .collect()
}
