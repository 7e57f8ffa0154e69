//! bgp-harness: runs a `bgp::Speaker` from a JSON configuration and answers JSON commands on a
//! Unix socket (see `tests::harness`). The lab's stand-in for `lbspeaker run`.
//!
//! `bgp-harness --config FILE [--restarting]`. SIGTERM or SIGINT: Cease / Administrative
//! Shutdown to every peer, then exit.

use std::time::Duration;

use anyhow::{Context as _, bail};
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

async fn run(cfg: HarnessConfig) -> anyhow::Result<()> {
    let speaker = Speaker::new();
    let name = cfg.instance.name.clone();
    speaker.start_instance(cfg.instance.clone()).await?;
    speaker.announce(&name, cfg.routes.clone()).await?;
    for p in cfg.peers.clone() {
        speaker.add_peer(&name, p).await?;
    }
    let _ = std::fs::remove_file(&cfg.control);
    let listener = UnixListener::bind(&cfg.control)?;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = tokio::signal::ctrl_c() => break,
            c = listener.accept() => {
                let Ok((stream, _)) = c else { continue };
                let speaker = speaker.clone();
                let name = name.clone();
                tokio::spawn(async move {
                    let (r, mut w) = stream.into_split();
                    let mut lines = BufReader::new(r).lines();
                    while let Ok(Some(line)) = lines.next_line().await {
                        let answer = match serde_json::from_str::<Value>(&line) {
                            Ok(cmd) => match command(&speaker, &name, cmd).await {
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

async fn command(s: &Speaker, inst: &str, cmd: Value) -> anyhow::Result<Value> {
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
            let p: PeerConfig = serde_json::from_value(cmd["config"].clone())?;
            json!({"reset": s.update_peer(inst, p).await?})
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
        other => bail!("unknown command {other:?}"),
    })
}
