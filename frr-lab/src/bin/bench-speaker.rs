//! bench-speaker: lbspeaker's BGP speaker (the `bgp` crate, the engine `lbspeaker run` drives)
//! as a plain router configured by a frr-lab `bgp:` block, for the `frr-lab bench` workloads
//! that need a transit router, which the daemon never is.
//!
//! `bench-speaker --config BGP.yaml`: starts the instance, announces the block's prefixes,
//! adds its neighbors, and runs until SIGTERM or SIGINT (then Cease to every peer). The
//! runtime is tokio's multi-threaded one, as in `lbspeaker run`.

use anyhow::{Context as _, bail};
use bgp::speaker::{Speaker, StopMode};
use frr_lab::BgpSpec;
use frr_lab::bench::speaker::setup;

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let mut args = std::env::args().skip(1);
    let mut config = None;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--config" => config = args.next(),
            other => bail!("unknown argument {other:?}; usage: bench-speaker --config FILE"),
        }
    }
    let path = config.context("--config FILE is required")?;
    let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
    let spec: BgpSpec = serde_saphyr::from_str(&text).with_context(|| path.clone())?;
    let s = setup(&spec)?;
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(async move {
            let speaker = Speaker::new();
            let name = s.instance.name.clone();
            speaker.start_instance(s.instance).await?;
            speaker.announce(&name, s.routes).await?;
            for p in s.peers {
                speaker.add_peer(&name, p).await?;
            }
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            speaker
                .shutdown(StopMode::Shutdown {
                    communication: Some("bench-speaker stopping".into()),
                })
                .await;
            anyhow::Ok(())
        })
}
