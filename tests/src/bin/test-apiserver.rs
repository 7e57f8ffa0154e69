//! `test-apiserver`: the in-memory Kubernetes API server over plain HTTP on loopback, for
//! kubectl and for clients run as processes. See docs/test-apiserver.md.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use tests::apiserver::{ApiServer, Config};

#[derive(Parser, Debug)]
#[command(
    version,
    about = "An in-memory Kubernetes API server for tests (plain HTTP, loopback only)"
)]
struct Args {
    /// Address to listen on (loopback only; port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Write a kubeconfig pointing at the server to this file.
    #[arg(long)]
    kubeconfig: Option<PathBuf>,
    /// Manifests (YAML or JSON, multi-document, or a directory of them) stored at start.
    #[arg(long)]
    seed: Vec<PathBuf>,
    /// Changes kept for watches; older resourceVersions get 410 Gone.
    #[arg(long, default_value_t = 10_000)]
    history_window: usize,
    /// Seconds between BOOKMARK events on watches that ask for them (0: none).
    #[arg(long, default_value_t = 2.0)]
    bookmark_interval: f64,
    /// The Kubernetes version to report, MAJOR.MINOR.
    #[arg(long, default_value = "1.32")]
    kube_version: String,
    /// Log level (or RUST_LOG).
    #[arg(long, default_value = "info")]
    log_level: String,
}

fn seed_files(path: &PathBuf) -> anyhow::Result<Vec<PathBuf>> {
    if path.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(path)
            .with_context(|| format!("reading {}", path.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.extension()
                    .is_some_and(|x| x == "yaml" || x == "yml" || x == "json")
            })
            .collect();
        files.sort();
        Ok(files)
    } else {
        Ok(vec![path.clone()])
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&args.log_level));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();

    let (major, minor) = args
        .kube_version
        .split_once('.')
        .and_then(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?)))
        .context("--kube-version must be MAJOR.MINOR")?;
    anyhow::ensure!(
        args.bookmark_interval.is_finite() && args.bookmark_interval >= 0.0,
        "--bookmark-interval must be a non-negative number of seconds"
    );
    let config = Config::default()
        .history_window(args.history_window)
        .bookmark_interval(Duration::from_secs_f64(args.bookmark_interval))
        .version(major, minor);
    let server = ApiServer::with_config(config);
    // Every seed document, then CRDs first so the objects they declare can be stored.
    let mut docs = Vec::new();
    for path in &args.seed {
        for file in seed_files(path)? {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            let found = tests::apiserver::documents(&text)
                .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
            docs.extend(found.into_iter().map(|d| (file.clone(), d)));
        }
    }
    let (crds, rest): (Vec<_>, Vec<_>) = docs
        .into_iter()
        .partition(|(_, d)| d["kind"] == "CustomResourceDefinition");
    for (file, d) in crds.into_iter().chain(rest) {
        server
            .insert(d)
            .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    }
    let running = server.start(args.listen).await?;
    if let Some(path) = &args.kubeconfig {
        running.write_kubeconfig(path)?;
    }
    println!("test-apiserver listening on {}", running.url());
    tracing::info!(url = %running.url(), objects = ?server.census(), "serving");
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    Ok(())
}
