//! bgp-harness: runs a `bgp::Speaker` from a JSON configuration and answers JSON commands on a
//! Unix socket (see `tests::harness`). The lab's stand-in for `lbspeaker run`. With `bfd` in
//! the configuration it runs a `bgp::bfd::BfdManager` that resets BGP sessions whose BFD
//! fails; with `fib` a `bgp::fib::FibInstaller` for the instance.
//!
//! `bgp-harness --config FILE [--restarting]`. SIGTERM or SIGINT: BFD AdminDown, our kernel
//! routes removed, Cease / Administrative Shutdown to every peer, then exit.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use anyhow::{Context as _, bail};
use bgp::bfd::{BfdManager, BfdPeer};
use bgp::fib::{Cleanup, FibInstaller};
use bgp::speaker::{PeerConfig, ResetReason, Route, Speaker, StopMode};
use bgp::wire::Family;
use ipnet::IpNet;
use serde_json::{Value, json};
use tests::harness::HarnessConfig;
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::UnixListener;

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let mut args = std::env::args().skip(1);
    let mut config = None;
    let mut restarting = false;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--config" => config = args.next(),
            "--restarting" => restarting = true,
            other => {
                bail!("unknown argument {other:?}; usage: bgp-harness --config FILE [--restarting]")
            }
        }
    }
    let path = config.context("--config FILE is required")?;
    let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
    let mut cfg: HarnessConfig = serde_json::from_str(&text).with_context(|| path.clone())?;
    cfg.instance.restarting |= restarting;
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(run(cfg))
}

/// What the commands act on.
#[derive(Clone)]
struct Parts {
    speaker: Speaker,
    instance: String,
    bfd: Option<BfdManager>,
    fib: Option<Arc<FibInstaller>>,
    events: Arc<Mutex<VecDeque<Value>>>,
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

fn record(events: &Mutex<VecDeque<Value>>, source: &str, at: f64, event: Value) {
    if let Ok(mut q) = events.lock() {
        if q.len() >= 4096 {
            q.pop_front();
        }
        q.push_back(json!({"at": at, "source": source, "event": event}));
    }
}

async fn run(cfg: HarnessConfig) -> anyhow::Result<()> {
    let speaker = Speaker::new();
    let name = cfg.instance.name.clone();
    let events = Arc::new(Mutex::new(VecDeque::new()));
    let mut bgp_events = speaker.subscribe_events();
    let log = events.clone();
    tokio::spawn(async move {
        while let Ok(e) = bgp_events.recv().await {
            let v = serde_json::to_value(&e).unwrap_or(Value::Null);
            record(&log, "bgp", unix_now(), v);
        }
    });
    speaker.start_instance(cfg.instance.clone()).await?;
    speaker.announce(&name, cfg.routes.clone()).await?;
    for p in cfg.peers.clone() {
        speaker.add_peer(&name, p).await?;
    }
    let fib = match cfg.fib.clone() {
        Some(f) => Some(Arc::new(FibInstaller::start(&speaker, &name, f).await?)),
        None => None,
    };
    let bfd = match cfg.bfd.clone() {
        Some(b) => {
            let m = BfdManager::start(b.manager, Arc::new(speaker.clone()))?;
            let mut rx = m.subscribe();
            let log = events.clone();
            tokio::spawn(async move {
                while let Ok(e) = rx.recv().await {
                    let at =
                        e.at.duration_since(SystemTime::UNIX_EPOCH)
                            .map_or(0.0, |d| d.as_secs_f64());
                    record(
                        &log,
                        "bfd",
                        at,
                        serde_json::to_value(&e).unwrap_or(Value::Null),
                    );
                }
            });
            m.set_peers(b.peers).await?;
            Some(m)
        }
        None => None,
    };
    let parts = Parts {
        speaker: speaker.clone(),
        instance: name.clone(),
        bfd: bfd.clone(),
        fib: fib.clone(),
        events,
    };
    let _ = std::fs::remove_file(&cfg.control);
    let listener = UnixListener::bind(&cfg.control)?;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
            c = listener.accept() => {
                let Ok((stream, _)) = c else { continue };
                let parts = parts.clone();
                tokio::spawn(async move {
                    let (r, mut w) = stream.into_split();
                    let mut lines = BufReader::new(r).lines();
                    while let Ok(Some(line)) = lines.next_line().await {
                        let answer = match serde_json::from_str::<Value>(&line) {
                            Ok(cmd) => match command(&parts, cmd).await {
                                Ok(v) => json!({"ok": v}),
                                Err(e) => json!({"error": format!("{e:#}")}),
                            },
                            Err(e) => json!({"error": format!("bad command: {e}")}),
                        };
                        let mut out = answer.to_string();
                        out.push('\n');
                        if w.write_all(out.as_bytes()).await.is_err() {
                            break;
                        }
                    }
                });
            }
        }
    }
    if let Some(m) = &bfd {
        m.shutdown().await;
    }
    if let Some(f) = &fib
        && let Err(e) = f.stop(Cleanup::RemoveAll).await
    {
        tracing::warn!(error = %e, "removing our kernel routes failed");
    }
    speaker
        .shutdown(StopMode::Shutdown {
            communication: Some("bgp-harness stopping".into()),
        })
        .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    Ok(())
}

fn family(cmd: &Value) -> anyhow::Result<Family> {
    match cmd["family"].as_str().unwrap_or("ipv4-unicast") {
        "ipv4-unicast" => Ok(Family::IPV4_UNICAST),
        "ipv6-unicast" => Ok(Family::IPV6_UNICAST),
        f => bail!("unknown family {f}"),
    }
}

fn peer_name(cmd: &Value) -> anyhow::Result<&str> {
    cmd["peer"].as_str().context("peer missing")
}

async fn command(p: &Parts, cmd: Value) -> anyhow::Result<Value> {
    let (s, inst) = (&p.speaker, p.instance.as_str());
    let what = cmd["cmd"].as_str().unwrap_or_default();
    Ok(match what {
        "peers" => serde_json::to_value(s.peer_states(inst).await?)?,
        "loc-rib" => serde_json::to_value(s.loc_rib(inst, family(&cmd)?).await?)?,
        "adj-rib-in" => {
            serde_json::to_value(s.adj_rib_in(inst, peer_name(&cmd)?, family(&cmd)?).await?)?
        }
        "adj-rib-out" => {
            serde_json::to_value(s.adj_rib_out(inst, peer_name(&cmd)?, family(&cmd)?).await?)?
        }
        "announce" => {
            let routes: Vec<Route> = serde_json::from_value(cmd["routes"].clone())?;
            s.announce(inst, routes).await?;
            Value::Null
        }
        "withdraw" => {
            let prefixes: Vec<IpNet> = serde_json::from_value(cmd["prefixes"].clone())?;
            s.withdraw(inst, prefixes).await?;
            Value::Null
        }
        "remove-peer" => {
            s.remove_peer(inst, peer_name(&cmd)?, cmd["communication"].as_str())
                .await?;
            Value::Null
        }
        "reset-peer" => {
            s.reset_peer(inst, peer_name(&cmd)?, ResetReason::BfdDown)
                .await?;
            Value::Null
        }
        "update-peer" => {
            let c: PeerConfig = serde_json::from_value(cmd["config"].clone())?;
            json!({"reset": s.update_peer(inst, c).await?})
        }
        "stop" => {
            let mode = if cmd["graceful"].as_bool().unwrap_or(false) {
                StopMode::GracefulRestart
            } else {
                StopMode::Shutdown {
                    communication: cmd["communication"].as_str().map(str::to_owned),
                }
            };
            s.stop_instance(inst, mode).await?;
            Value::Null
        }
        "bfd" => {
            let m = p.bfd.as_ref().context("no BFD configured")?;
            let (sessions, counters) = m.sessions_and_counters().await?;
            json!({"sessions": sessions, "counters": counters})
        }
        "set-bfd-peers" => {
            let m = p.bfd.as_ref().context("no BFD configured")?;
            let peers: Vec<BfdPeer> = serde_json::from_value(cmd["peers"].clone())?;
            m.set_peers(peers).await?;
            Value::Null
        }
        "fib" => {
            let f = p.fib.as_ref().context("no FIB installation configured")?;
            serde_json::to_value(f.status().await?)?
        }
        "fib-stop" => {
            let f = p.fib.as_ref().context("no FIB installation configured")?;
            let cleanup = match cmd["cleanup"].as_str().unwrap_or("remove-all") {
                "remove-all" => Cleanup::RemoveAll,
                "keep" => Cleanup::Keep,
                c => bail!("unknown cleanup {c:?}: remove-all or keep"),
            };
            serde_json::to_value(f.stop(cleanup).await?)?
        }
        "events" => {
            let q = p
                .events
                .lock()
                .map(|q| q.iter().cloned().collect::<Vec<_>>());
            Value::Array(q.unwrap_or_default())
        }
        other => bail!("unknown command {other:?}"),
    })
}
