//! How long `lbspeaker run --dataplane on` takes from a manifest change to the map update:
//! N services (one file each: a Service with an external IP and its EndpointSlice of two
//! endpoints) in a manifest directory, the daemon in a network namespace of its own (its
//! uplink a veth inside it) on a bpffs of its own; then one endpoint of one service is
//! replaced, again and again, and the time from the file's rename to the daemon's map update
//! counter moving is measured (polling `/metrics` every 5 ms from inside the namespace). The
//! daemon's own log gives the part from its snapshot to the maps.
//!
//! ```sh
//! cargo build --release -p agent-glue --bins --examples
//! target/release/examples/dataplane_latency [SERVICES...]     # root; default 10 1000 27000
//! ```
//!
//! Figures, never assertions: see docs/BENCHMARKS.md.

#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const CHANGES: usize = 20;

fn run(cmd: &str, args: &[&str]) {
    let s = Command::new(cmd).args(args).status().unwrap();
    assert!(s.success(), "{cmd} {args:?}");
}

fn service(i: usize, generation: usize) -> String {
    let (a, b) = (i / 250, i % 250 + 1);
    format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: s{i}, namespace: bench}}\nspec:\n  type: ClusterIP\n  externalIPs: [10.128.{a}.{b}]\n  ports: [{{port: 80, targetPort: 8080}}]\n---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {{name: s{i}, namespace: bench, labels: {{kubernetes.io/service-name: s{i}}}}}\naddressType: IPv4\nports: [{{port: 8080}}]\nendpoints:\n- {{addresses: [10.64.{a}.{b}], nodeName: other}}\n- {{addresses: [10.{}.{a}.{b}], nodeName: other}}\n",
        65 + generation % 2
    )
}

fn write_atomic(path: &Path, text: &str) {
    let tmp = path.with_file_name(format!(
        ".{}.tmp",
        path.file_name().unwrap().to_string_lossy()
    ));
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

struct Bench {
    ns: String,
    base: PathBuf,
    daemon: Option<Child>,
}

impl Drop for Bench {
    fn drop(&mut self) {
        if let Some(mut c) = self.daemon.take() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(c.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let _ = c.wait();
        }
        let _ = Command::new("umount")
            .args(["-l", &self.base.join("bpffs").to_string_lossy()])
            .status();
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).status();
        let _ = std::fs::remove_dir_all(&self.base);
    }
}

/// `GET /metrics` from inside the namespace; the value of `update` map operations.
fn updates(ns: &Path) -> Option<(u64, u64)> {
    let s = ebpf::netns::run_in(Some(ns), || TcpStream::connect("127.0.0.1:9962"))
        .ok()?
        .ok()?;
    let mut s = s;
    s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let value = |prefix: &str| {
        text.lines()
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .map(|v| v as u64)
    };
    Some((
        value("lbspeaker_dataplane_map_operations_total{node=\"bench\",op=\"update\"}")?,
        value("lbspeaker_dataplane_frontends{")?,
    ))
}

fn stats(mut v: Vec<f64>) -> String {
    v.sort_by(f64::total_cmp);
    let med = v[v.len() / 2];
    format!(
        "min {:.1} / median {:.1} / max {:.1} ms",
        v[0],
        med,
        v[v.len() - 1]
    )
}

fn bench(n: usize, bin: &Path) {
    let pid = std::process::id();
    let ns = format!("lbbench{pid}x{n}");
    let base = PathBuf::from(format!("/run/lbspeaker-bench/{pid}-{n}"));
    let mut b = Bench {
        ns: ns.clone(),
        base: base.clone(),
        daemon: None,
    };
    let dir = base.join("manifests");
    std::fs::create_dir_all(dir.join("svc")).unwrap();
    std::fs::create_dir_all(base.join("bpffs")).unwrap();
    run(
        "mount",
        &["-t", "bpf", "bpf", &base.join("bpffs").to_string_lossy()],
    );
    run("ip", &["netns", "add", &ns]);
    let ip = |args: &[&str]| {
        let mut a = vec!["-n", ns.as_str()];
        a.extend_from_slice(args);
        run("ip", &a);
    };
    ip(&["link", "set", "lo", "up"]);
    ip(&[
        "link", "add", "up0", "type", "veth", "peer", "name", "peer0",
    ]);
    ip(&["addr", "add", "10.255.0.1/24", "dev", "up0"]);
    ip(&["link", "set", "up0", "up"]);
    ip(&["link", "set", "peer0", "up"]);
    std::fs::write(
        dir.join("node.yaml"),
        "apiVersion: v1\nkind: Node\nmetadata: {name: bench}\nstatus: {addresses: [{type: InternalIP, address: 10.255.0.1}]}\n",
    )
    .unwrap();
    for i in 0..n {
        std::fs::write(dir.join(format!("svc/{i:05}.yaml")), service(i, 0)).unwrap();
    }
    let log = base.join("lbspeaker.log");
    let start = Instant::now();
    let child = Command::new("ip")
        .args(["netns", "exec", &ns])
        .arg(bin)
        .args([
            "run",
            "--config-dir",
            &dir.to_string_lossy(),
            "--node",
            "bench",
            "--api",
            &base.join("api.sock").to_string_lossy(),
            "--metrics-addr",
            "127.0.0.1:9962",
            "--log-format",
            "json",
            "--dataplane",
            "on",
            "--bpffs-root",
            &base.join("bpffs/lbspeaker").to_string_lossy(),
            "--bpf-lb-map-max",
            "262144",
        ])
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(std::fs::File::options().append(true).open(&log).unwrap())
        .spawn()
        .unwrap();
    b.daemon = Some(child);
    let nspath = ebpf::netns::named(&ns);
    let mut last = loop {
        if let Some((u, f)) = updates(&nspath)
            && f as usize == n
        {
            break u;
        }
        assert!(
            start.elapsed() < Duration::from_secs(600),
            "the daemon never programmed {n} frontends"
        );
        std::thread::sleep(Duration::from_millis(5));
    };
    let loaded = start.elapsed();
    std::thread::sleep(Duration::from_millis(500));
    let mut e2e = Vec::new();
    let mut generation = std::collections::HashMap::new();
    for c in 0..CHANGES {
        let i = (c * 7919) % n;
        let g = generation.entry(i).or_insert(0usize);
        *g += 1;
        let t0 = Instant::now();
        write_atomic(&dir.join(format!("svc/{i:05}.yaml")), &service(i, *g));
        loop {
            if let Some((u, _)) = updates(&nspath)
                && u > last
            {
                last = u;
                break;
            }
            assert!(t0.elapsed() < Duration::from_secs(60), "no update");
            std::thread::sleep(Duration::from_millis(5));
        }
        e2e.push(t0.elapsed().as_secs_f64() * 1000.0);
        std::thread::sleep(Duration::from_millis(300));
    }
    // The daemon's own account: snapshot to maps, per pass that changed them.
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let inner: Vec<f64> = text
        .lines()
        .filter(|l| l.contains("dataplane maps updated") && l.contains("\"full\":false"))
        .filter_map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).ok()?;
            Some(v.get("fields").unwrap_or(&v)["elapsed_us"].as_f64()? / 1000.0)
        })
        .collect();
    println!(
        "{n} services: loaded (start to {n} frontends in the maps) in {:.2} s",
        loaded.as_secs_f64()
    );
    println!(
        "  one endpoint replaced, file rename to map update: {}",
        stats(e2e)
    );
    if !inner.is_empty() {
        println!(
            "  of which snapshot to maps (translate + upsert, daemon log): {}",
            stats(inner)
        );
    }
}

fn main() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "needs root (namespaces, bpffs)"
    );
    let exe = std::env::current_exe().unwrap();
    let bin = exe
        .ancestors()
        .skip(1)
        .take(2)
        .map(|d| d.join("lbspeaker"))
        .find(|p| p.is_file())
        .expect(
            "lbspeaker beside this example: cargo build --release -p agent-glue --bins --examples",
        );
    let scales: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().unwrap())
        .collect();
    let scales = if scales.is_empty() {
        vec![10, 1000, 27000]
    } else {
        scales
    };
    for n in scales {
        bench(n, &bin);
    }
}
