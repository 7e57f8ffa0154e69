//! `lbspeaker`: the daemon, the operator and the CLI in one binary.

use clap::Parser;

/// BGP control plane, LB-IPAM and L2 announcements for bare-metal Kubernetes, driven by the
/// cilium.io resources.
#[derive(Debug, Parser)]
#[command(name = "lbspeaker", version, about)]
struct Cli {}

fn main() -> anyhow::Result<()> {
    let _cli = Cli::parse();
    anyhow::bail!(
        "lbspeaker has no subcommands yet: the daemon (`lbspeaker run`) arrives with a later issue"
    )
}
