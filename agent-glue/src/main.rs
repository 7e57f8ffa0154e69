//! `lbspeaker`: the daemon, the operator and the CLI in one binary.

use clap::{Parser, Subcommand};

/// BGP control plane, LB-IPAM and L2 announcements for bare-metal Kubernetes, driven by the
/// cilium.io resources.
#[derive(Debug, Parser)]
#[command(name = "lbspeaker", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// BGP tools.
    #[command(subcommand)]
    Bgp(agent_glue::cli::bgp::BgpCommand),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Bgp(cmd) => agent_glue::cli::bgp::run(cmd),
    }
}
