//! The `unsafe` audit: `unsafe` code appears only in the files listed in [`ALLOWED`] (the eBPF
//! map types, the raw sockets, and the counting allocators of two benchmarks), each use has a
//! `SAFETY:` comment saying why it is sound, and every crate of the workspace inherits
//! `unsafe_code = "deny"`. A new `unsafe` anywhere else fails here with its file and line;
//! adding a file to the list is a reviewed decision with its reason next to it.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

/// Files that may hold `unsafe` code, and why.
const ALLOWED: &[(&str, &str)] = &[
    (
        "ebpf/src/maps.rs",
        "aya::Pod for the #[repr(C)] map types the kernel reads and writes (eBPF)",
    ),
    (
        "l2announce/src/responder/socket.rs",
        "AF_PACKET raw sockets: sockaddr_ll and registering the descriptor with tokio",
    ),
    (
        "bgp/src/speaker/transport.rs",
        "setsockopt TCP_MD5SIG and IP_MINTTL / IPV6_MINHOPCOUNT, which socket2 does not wrap",
    ),
    (
        "bgp/benches/codec.rs",
        "benchmark only: a counting GlobalAlloc (an unsafe trait) that forwards to System",
    ),
    (
        "lbipam/benches/allocate.rs",
        "benchmark only: a tracking GlobalAlloc (an unsafe trait) that forwards to System",
    ),
];

/// Lines above an `unsafe` that may hold its `SAFETY:` comment.
const SAFETY_WINDOW: usize = 8;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || name == "target" {
            continue;
        }
        if p.is_dir() {
            rust_files(&p, out);
        } else if name.ends_with(".rs") {
            out.push(p);
        }
    }
}

/// The code of each line with comments and string and character literals blanked, so that
/// `unsafe` in prose or in a string does not count. Block comments and strings may span
/// lines; raw strings are treated as plain ones (none of ours holds the word).
fn code_lines(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut in_block = 0usize;
    let mut in_str = false;
    for line in text.lines() {
        let mut code = String::new();
        let b = line.as_bytes();
        let mut i = 0;
        while i < b.len() {
            let c = b[i];
            let next = b.get(i + 1).copied();
            if in_block > 0 {
                if c == b'*' && next == Some(b'/') {
                    in_block -= 1;
                    i += 2;
                } else if c == b'/' && next == Some(b'*') {
                    in_block += 1;
                    i += 2;
                } else {
                    i += 1;
                }
                continue;
            }
            if in_str {
                if c == b'\\' {
                    i += 2;
                    continue;
                }
                if c == b'"' {
                    in_str = false;
                }
                i += 1;
                continue;
            }
            match (c, next) {
                (b'/', Some(b'/')) => break,
                (b'/', Some(b'*')) => {
                    in_block += 1;
                    i += 2;
                }
                (b'"', _) => {
                    in_str = true;
                    code.push(' ');
                    i += 1;
                }
                // A character literal ('x', '\n', '\'') is skipped; a lifetime ('a) is not
                // one.
                (b'\'', Some(b'\\')) => {
                    let close = b[i + 2..].iter().skip(1).position(|&x| x == b'\'');
                    i += close.map_or(b.len(), |p| p + 4);
                }
                (b'\'', Some(_)) if b.get(i + 2) == Some(&b'\'') => i += 3,
                _ => {
                    code.push(c as char);
                    i += 1;
                }
            }
        }
        out.push(code);
    }
    out
}

fn has_unsafe_token(code: &str) -> bool {
    code.match_indices("unsafe").any(|(i, _)| {
        let before = code[..i].chars().next_back();
        let after = code[i + 6..].chars().next();
        let word = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
        !word(before) && !word(after)
    })
}

#[derive(Debug)]
struct Finding {
    file: String,
    line: usize,
    what: String,
}

fn audit(root: &Path) -> (Vec<Finding>, usize) {
    let mut files = Vec::new();
    for top in std::fs::read_dir(root).unwrap().flatten() {
        let p = top.path();
        let name = top.file_name().to_string_lossy().into_owned();
        if p.is_dir() && !name.starts_with('.') && name != "target" {
            rust_files(&p, &mut files);
        }
    }
    files.sort();
    let mut findings = Vec::new();
    let mut uses = 0;
    for f in files {
        let rel = f.strip_prefix(root).unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(&f).unwrap_or_default();
        let raw: Vec<&str> = text.lines().collect();
        let code = code_lines(&text);
        let allowed = ALLOWED.iter().any(|(p, _)| *p == rel);
        let mut in_unsafe_impl = false;
        for (i, c) in code.iter().enumerate() {
            if c.starts_with('}') {
                in_unsafe_impl = false;
            }
            if !has_unsafe_token(c) {
                continue;
            }
            uses += 1;
            if !allowed {
                findings.push(Finding {
                    file: rel.clone(),
                    line: i + 1,
                    what: format!("unsafe outside the allowed files: {}", raw[i].trim()),
                });
                continue;
            }
            let trimmed = c.trim_start();
            // The methods of an `unsafe impl` are covered by the impl's own comment.
            let method_of_unsafe_impl = in_unsafe_impl && trimmed.starts_with("unsafe fn");
            if trimmed.starts_with("unsafe impl") {
                in_unsafe_impl = !c.trim_end().ends_with("{}");
            }
            let commented = raw[i.saturating_sub(SAFETY_WINDOW)..=i]
                .iter()
                .any(|l| l.contains("// SAFETY"));
            if !commented && !method_of_unsafe_impl {
                findings.push(Finding {
                    file: rel.clone(),
                    line: i + 1,
                    what: format!(
                        "unsafe without a SAFETY: comment (// SAFETY...): {}",
                        raw[i].trim()
                    ),
                });
            }
        }
    }
    (findings, uses)
}

#[test]
fn unsafe_code_is_only_in_the_allowed_files_and_every_use_says_why_it_is_sound() {
    let (findings, uses) = audit(&root());
    assert!(
        findings.is_empty(),
        "{} finding(s):\n{}",
        findings.len(),
        findings
            .iter()
            .map(|f| format!("  {}:{}: {}", f.file, f.line, f.what))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(uses > 0, "the audit found no unsafe at all: is it looking?");
    eprintln!(
        "{uses} lines with unsafe, all in {} allowed files",
        ALLOWED.len()
    );
}

#[test]
fn every_allowed_file_exists_and_opts_in_explicitly() {
    for (p, why) in ALLOWED {
        let text = std::fs::read_to_string(root().join(p))
            .unwrap_or_else(|e| panic!("{p} ({why}): {e}; remove it from the list"));
        assert!(
            text.contains("#![allow(unsafe_code)]"),
            "{p} holds no #![allow(unsafe_code)]: remove it from the list"
        );
    }
}

#[test]
fn every_crate_inherits_the_workspace_ban_on_unsafe_code() {
    let root_toml = std::fs::read_to_string(root().join("Cargo.toml")).unwrap();
    assert!(root_toml.contains("unsafe_code = \"deny\""));
    let members: Vec<String> = root_toml
        .split("members = [")
        .nth(1)
        .and_then(|s| s.split(']').next())
        .unwrap()
        .split(',')
        .map(|m| m.trim().trim_matches('"').to_owned())
        .filter(|m| !m.is_empty())
        .collect();
    assert!(members.len() >= 8, "{members:?}");
    for m in members {
        let t = std::fs::read_to_string(root().join(&m).join("Cargo.toml")).unwrap();
        let lints = t.split("[lints]").nth(1).unwrap_or_default();
        assert!(
            lints.trim_start().starts_with("workspace = true"),
            "{m}/Cargo.toml does not inherit the workspace lints"
        );
    }
}

#[test]
fn the_audit_sees_unsafe_in_code_and_not_in_comments_or_strings() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("somecrate/src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(
        src.join("lib.rs"),
        "// unsafe in a comment\n/* and unsafe\n in a block */\nconst S: &str = \"unsafe\";\n\
         fn unsafe_code_name() {}\nfn f() { unsafe { g() } }\n",
    )
    .unwrap();
    let (findings, uses) = audit(dir.path());
    assert_eq!(uses, 1, "{findings:?}");
    assert_eq!(findings.len(), 1);
    assert_eq!(
        (findings[0].file.as_str(), findings[0].line),
        ("somecrate/src/lib.rs", 6)
    );
}
