//! `lbspeaker bgp ...`: BGP state of the running daemon, and tools.

use clap::Subcommand;

use super::query::{self, Query, QueryArgs};
use crate::api::{Afi, RouteTable, Safi};

/// The `bgp` command group.
#[derive(Debug, Subcommand)]
pub enum BgpCommand {
    /// Sessions: Node, Local AS, Peer AS, Peer Address, Session State, Uptime, Family,
    /// Received, Advertised.
    Peers,
    /// Routes of the Loc-RIB (`available`) or sent to peers (`advertised`).
    Routes {
        /// `available` or `advertised`.
        #[arg(value_enum)]
        table: RouteTableArg,
        /// `ipv4` or `ipv6`.
        #[arg(value_enum)]
        afi: Afi,
        /// `unicast`.
        #[arg(value_enum)]
        safi: Safi,
    },
    /// Export policies derived from the CiliumBGPAdvertisements.
    RoutePolicies,
    /// Decode BGP messages (hex, or a pcap/pcapng capture) and print one JSON object per
    /// message, with the RFC 7606 action and NOTIFICATION for malformed ones.
    Decode(super::decode::DecodeArgs),
}

/// `available` or `advertised`, as typed.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum RouteTableArg {
    /// The Loc-RIB.
    Available,
    /// The Adj-RIBs-Out.
    Advertised,
}

/// Runs a `bgp` command.
pub fn run(cmd: BgpCommand, args: &QueryArgs) -> anyhow::Result<()> {
    match cmd {
        BgpCommand::Peers => query::run(args, Query::Peers),
        BgpCommand::Routes { table, afi, safi } => {
            let table = match table {
                RouteTableArg::Available => RouteTable::Available,
                RouteTableArg::Advertised => RouteTable::Advertised,
            };
            query::run(args, Query::Routes(table, afi, safi))
        }
        BgpCommand::RoutePolicies => query::run(args, Query::RoutePolicies),
        BgpCommand::Decode(d) => super::decode::run(&d),
    }
}
