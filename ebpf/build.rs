//! Compiles the tc programs under `bpf/` with clang into `$OUT_DIR/lb.bpf.o`, which the crate
//! embeds. A missing or failing clang is a build error that says what to install.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").unwrap_or_default());
    let src = manifest.join("bpf/lb.bpf.c");
    let header = manifest.join("bpf/lb.h");
    let obj = out_dir.join("lb.bpf.o");
    println!("cargo:rerun-if-changed={}", src.display());
    println!("cargo:rerun-if-changed={}", header.display());
    println!("cargo:rerun-if-env-changed=LBSPEAKER_CLANG");

    let clang = std::env::var("LBSPEAKER_CLANG").unwrap_or_else(|_| "clang".to_owned());
    let arch_include = format!("/usr/include/{}-linux-gnu", target_arch_triple_dir());
    let output = Command::new(&clang)
        .args(["-O2", "-g", "-Wall", "-Werror", "-target", "bpf"])
        .arg(format!("-I{arch_include}"))
        .arg("-c")
        .arg(&src)
        .arg("-o")
        .arg(&obj)
        .output();
    match output {
        Err(e) => fail(&format!(
            "cannot run `{clang}` to compile the eBPF programs ({e}).\n\
             The ebpf crate needs clang with the BPF target and the libbpf headers:\n\
             \x20   apt-get install clang llvm libbpf-dev   (or ./scripts/setup.sh)\n\
             Set LBSPEAKER_CLANG to use another clang."
        )),
        Ok(out) if !out.status.success() => fail(&format!(
            "`{clang} -target bpf` failed on {}:\n{}\n\
             (the headers come from libbpf-dev and linux-libc-dev: apt-get install libbpf-dev)",
            src.display(),
            String::from_utf8_lossy(&out.stderr)
        )),
        Ok(_) => {}
    }
}

/// The multiarch include directory for `asm/types.h` (Debian puts it under the triple).
fn target_arch_triple_dir() -> &'static str {
    match std::env::var("CARGO_CFG_TARGET_ARCH").as_deref() {
        Ok("aarch64") => "aarch64",
        _ => "x86_64",
    }
}

fn fail(message: &str) -> ! {
    eprintln!("error: {message}");
    std::process::exit(1)
}
