//! The check behind the `manifest` fuzz target: any text as a manifest file, read the way the
//! directory source reads one (`crds::manifest::split_documents`, then
//! `agent_glue::source::parse_document` per document, the objects into a `SnapshotBuilder`).
//! Panics when anything panics, or when
//!
//! - the documents are not numbered 1, 2, ... in file order with increasing first lines
//!   inside the file, or a document's text is not a piece of the file;
//! - a rejected document has no message, or one without the document's number and line;
//! - an accepted object, written as YAML the way the status sink writes objects
//!   (`serde_saphyr::to_string`) and read again, is not the same object.
#![allow(dead_code)]

use agent_glue::source::{Object, SnapshotBuilder, parse_document};
use crds::manifest::{Document, split_documents};

fn to_yaml(o: &Object) -> Result<String, serde_saphyr::SerializeError> {
    match o {
        Object::BgpClusterConfig(x) => serde_saphyr::to_string(x),
        Object::BgpPeerConfig(x) => serde_saphyr::to_string(x),
        Object::BgpAdvertisement(x) => serde_saphyr::to_string(x),
        Object::BgpNodeConfig(x) => serde_saphyr::to_string(x),
        Object::BgpNodeConfigOverride(x) => serde_saphyr::to_string(x),
        Object::LbIpPool(x) => serde_saphyr::to_string(x),
        Object::L2AnnouncementPolicy(x) => serde_saphyr::to_string(x),
        Object::PodIpPool(x) => serde_saphyr::to_string(x),
        Object::Service(x) => serde_saphyr::to_string(x),
        Object::EndpointSlice(x) => serde_saphyr::to_string(x),
        Object::Node(x) => serde_saphyr::to_string(x),
        Object::Secret(x) => serde_saphyr::to_string(x),
        Object::BfdProfile(x) => serde_saphyr::to_string(x),
    }
}

fn check_split(file: &str, docs: &[Document<'_>]) {
    let lines = file.split_inclusive('\n').count().max(1);
    let mut last_line = 0;
    for (i, d) in docs.iter().enumerate() {
        assert_eq!(d.number, i + 1, "document numbering");
        assert!(d.first_line > last_line, "first lines go forward");
        assert!(
            d.first_line <= lines,
            "first line {} of {lines}",
            d.first_line
        );
        last_line = d.first_line;
        let start = (d.text.as_ptr() as usize).wrapping_sub(file.as_ptr() as usize);
        assert!(
            start <= file.len() && file.get(start..start + d.text.len()) == Some(d.text),
            "a document's text is not part of the file"
        );
    }
}

/// Runs one input; panics when a property fails.
pub fn manifest(data: &[u8]) {
    // The directory source reads only UTF-8 files; YAML documents far beyond what a
    // manifest needs only slow the fuzzer down.
    let Ok(file) = std::str::from_utf8(data) else {
        return;
    };
    if file.len() > 64 * 1024 {
        return;
    }
    let docs = split_documents(file);
    check_split(file, &docs);
    let mut b = SnapshotBuilder::new();
    for d in &docs {
        match parse_document(d) {
            Ok(Some(obj)) => {
                let yaml = to_yaml(&obj).expect("an accepted object serializes");
                let again = split_documents(&yaml);
                assert_eq!(again.len(), 1, "one object, one document: {yaml}");
                let back = parse_document(&again[0]);
                assert_eq!(
                    back.as_ref().ok().and_then(|o| o.as_ref()),
                    Some(&obj),
                    "written as\n{yaml}\nread back as {back:?}"
                );
                b.add(obj, "fuzz.yaml");
            }
            Ok(None) => {}
            Err(msg) => {
                let head = format!("document {} (from line {})", d.number, d.first_line);
                assert!(
                    msg.starts_with(&head),
                    "{msg:?} does not say where ({head})"
                );
                b.problem("fuzz.yaml", msg);
            }
        }
    }
    let _ = b.build(1);
}
