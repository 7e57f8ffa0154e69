//! `l2announce-lab`: one node's L2 announcer over the file lease backend, for the namespace
//! lab tests and the failover bench. Not the daemon: `lbspeaker run` is.
//!
//! ```sh
//! l2announce-lab node --node node1 --leases DIR --desired desired.json --state state.json \
//!     [--timers 15/5/2] [--announce-count 5] [--announce-interval 1] [--link-grace 1] [--no-liveness]
//! l2announce-lab hammer DIR LEASE COUNT     # COUNT optimistic increments of leaseTransitions
//! l2announce-lab hold DIR NODE              # open the backend as NODE and wait
//! ```
//!
//! `desired.json` is a JSON list of desired announcements
//! (`{"address", "services": ["ns/name"], "interfaces": ["eth1"], "eligible"}`), read again
//! whenever it changes; `state.json` is rewritten whenever the visible state or the counters
//! change. SIGTERM releases what is held and exits; SIGKILL, of course, does not.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand};
use l2announce::election::{Timers, acquired_record};
use l2announce::{
    AnnounceConfig, DesiredAnnouncement, FileBackend, LeaseBackend as _, LeaseName, Runner,
    RunnerConfig,
};
use tokio::signal::unix::{SignalKind, signal};

#[derive(Parser)]
#[command(about = "L2 announcer of one lab node (file lease backend)")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run one node.
    Node(NodeArgs),
    /// Increment a lease's transitions COUNT times with optimistic concurrency.
    Hammer {
        dir: PathBuf,
        lease: String,
        count: u32,
    },
    /// Open the backend as NODE (holding its liveness lock) and wait to be killed.
    Hold { dir: PathBuf, node: String },
}

#[derive(clap::Args)]
struct NodeArgs {
    /// The node name (lease holder identity).
    #[arg(long)]
    node: String,
    /// The lease directory shared by the nodes.
    #[arg(long)]
    leases: PathBuf,
    /// JSON list of desired announcements.
    #[arg(long)]
    desired: PathBuf,
    /// Where to write the visible state.
    #[arg(long)]
    state: Option<PathBuf>,
    /// Lease duration / renew deadline / retry period, in seconds.
    #[arg(long, default_value = "15/5/2")]
    timers: String,
    /// Announcement rounds after a takeover or a link flap.
    #[arg(long, default_value_t = 5)]
    announce_count: u32,
    /// Seconds between announcement rounds.
    #[arg(long, default_value_t = 1.0)]
    announce_interval: f64,
    /// Seconds a link may be down before the node gives its addresses up.
    #[arg(long, default_value_t = 1.0)]
    link_grace: f64,
    /// Do not use the backend's liveness locks: wait for leases to expire, as with Kubernetes.
    #[arg(long)]
    no_liveness: bool,
}

fn seconds(s: &str) -> anyhow::Result<Duration> {
    let v: f64 = s
        .trim()
        .parse()
        .with_context(|| format!("{s:?} is not a number of seconds"))?;
    Duration::try_from_secs_f64(v).with_context(|| format!("{s:?} is not a duration"))
}

fn parse_timers(s: &str) -> anyhow::Result<Timers> {
    let parts: Vec<&str> = s.split('/').collect();
    let [d, r, p] = parts.as_slice() else {
        bail!("--timers wants DURATION/RENEW/RETRY, got {s:?}")
    };
    Ok(Timers::new(seconds(d)?, seconds(r)?, seconds(p)?)?)
}

fn write_atomically(path: &Path, text: &str) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

async fn node(args: NodeArgs) -> anyhow::Result<()> {
    let mut backend = FileBackend::open(&args.leases, Some(&args.node))?;
    if args.no_liveness {
        backend = backend.without_liveness();
    }
    let config = RunnerConfig {
        node: args.node.clone(),
        timers: parse_timers(&args.timers)?,
        announce: AnnounceConfig {
            count: args.announce_count,
            interval: seconds(&args.announce_interval.to_string())?,
        },
        link_down_grace: seconds(&args.link_grace.to_string())?,
    };
    let runner = Runner::start(config, backend).await?;
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    let mut last_desired: Option<String> = None;
    let mut last_state = String::new();
    tracing::info!(node = %args.node, "l2announce-lab running");
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = tick.tick() => {}
        }
        if let Ok(text) = std::fs::read_to_string(&args.desired)
            && last_desired.as_deref() != Some(text.as_str())
        {
            match serde_json::from_str::<Vec<DesiredAnnouncement>>(&text) {
                Ok(d) => {
                    tracing::info!(addresses = d.len(), "desired announcements changed");
                    runner.set_desired(d);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot parse the desired announcements; keeping the previous ones")
                }
            }
            last_desired = Some(text);
        }
        if let Some(path) = &args.state {
            let state = serde_json::json!({
                "node": args.node,
                "state": runner.state(),
                "counters": runner.counters(),
            });
            let text = serde_json::to_string_pretty(&state)?;
            if text != last_state {
                write_atomically(path, &text)?;
                last_state = text;
            }
        }
    }
    tracing::info!("shutting down");
    runner.shutdown(Duration::from_secs(3)).await;
    Ok(())
}

async fn hammer(dir: PathBuf, lease: String, count: u32) -> anyhow::Result<()> {
    let b = FileBackend::open(dir, None)?;
    let name = LeaseName::new(lease)?;
    let mut conflicts = 0u32;
    for _ in 0..count {
        loop {
            let current = b.get(&name).await?;
            let result = match &current {
                None => {
                    b.create(
                        &name,
                        &acquired_record(
                            std::time::SystemTime::now(),
                            None,
                            "hammer",
                            &Timers::default(),
                        ),
                    )
                    .await
                }
                Some(l) => {
                    let mut r = l.record.clone();
                    r.transitions += 1;
                    b.update(&name, &r, &l.resource_version).await
                }
            };
            match result {
                Ok(_) if current.is_none() => {} // created with 0: not an increment yet
                Ok(_) => break,
                Err(e) if e.is_conflict() => conflicts += 1,
                Err(e) => return Err(e.into()),
            }
        }
    }
    println!("conflicts {conflicts}");
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match Cli::parse().command {
        Command::Node(args) => node(args).await,
        Command::Hammer { dir, lease, count } => hammer(dir, lease, count).await,
        Command::Hold { dir, node } => {
            let _backend = FileBackend::open(dir, Some(&node))?;
            println!("holding {node}");
            std::future::pending::<()>().await;
            Ok(())
        }
    }
}
