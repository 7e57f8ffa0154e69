//! `lbspeaker bgp ...`: BGP tools.

use clap::Subcommand;

/// The `bgp` command group.
#[derive(Debug, Subcommand)]
pub enum BgpCommand {
    /// Decode BGP messages (hex, or a pcap/pcapng capture) and print one JSON object per
    /// message, with the RFC 7606 action and NOTIFICATION for malformed ones.
    Decode(super::decode::DecodeArgs),
}

/// Runs a `bgp` command.
pub fn run(cmd: BgpCommand) -> anyhow::Result<()> {
    match cmd {
        BgpCommand::Decode(args) => super::decode::run(&args),
    }
}
