//! The subcommands that ask a running daemon through its local API and print tables (or
//! JSON with `-o json`): `bgp peers`, `bgp routes`, `bgp route-policies`, `ipam pools`,
//! `ipam services`, `l2 leases`, `lb list`, `status`.

use std::path::PathBuf;

use clap::Args;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::api::client::Client;
use crate::api::render::{self, Output};
use crate::api::{
    Afi, LeaseView, PeerView, PolicyView, PoolView, RouteTable, RouteView, Safi, ServiceView,
};

/// Where the daemon is and how to print its answer.
#[derive(Debug, Clone, Args)]
pub struct QueryArgs {
    /// The daemon's API socket.
    #[arg(long, global = true, env = "LBSPEAKER_API", default_value = crate::api::DEFAULT_SOCKET)]
    pub api: PathBuf,
    /// Output format.
    #[arg(short = 'o', long = "output", global = true, value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

/// What to ask.
#[derive(Debug, Clone)]
pub enum Query {
    /// `bgp peers`.
    Peers,
    /// `bgp routes TABLE AFI SAFI`.
    Routes(RouteTable, Afi, Safi),
    /// `bgp route-policies`.
    RoutePolicies,
    /// `ipam pools`.
    Pools,
    /// `ipam services`.
    Services,
    /// `l2 leases`.
    Leases,
    /// `lb list`.
    LbList,
    /// `status`.
    Status,
}

async fn fetch<T: DeserializeOwned + Serialize>(
    client: &Client,
    path: &str,
    output: Output,
    table: impl FnOnce(&T) -> String,
) -> anyhow::Result<String> {
    let value: T = client.get(path).await?;
    Ok(match output {
        Output::Table => table(&value),
        Output::Json => serde_json::to_string_pretty(&value)? + "\n",
    })
}

/// Asks the daemon and returns what to print.
pub async fn ask(args: &QueryArgs, query: Query) -> anyhow::Result<String> {
    let client = Client::new(&args.api);
    let o = args.output;
    match query {
        Query::Peers => {
            fetch(&client, "/v1/bgp/peers", o, |v: &Vec<PeerView>| {
                render::peers(v)
            })
            .await
        }
        Query::Routes(table, afi, _safi) => {
            let kind = match table {
                RouteTable::Available => "available",
                RouteTable::Advertised => "advertised",
            };
            let path = format!("/v1/bgp/routes/{kind}/{afi}/unicast");
            fetch(&client, &path, o, |v: &Vec<RouteView>| {
                render::routes(table, v)
            })
            .await
        }
        Query::RoutePolicies => {
            fetch(
                &client,
                "/v1/bgp/route-policies",
                o,
                |v: &Vec<PolicyView>| render::policies(v),
            )
            .await
        }
        Query::Pools => {
            fetch(&client, "/v1/ipam/pools", o, |v: &Vec<PoolView>| {
                render::pools(v)
            })
            .await
        }
        Query::Services => {
            fetch(&client, "/v1/ipam/services", o, |v: &Vec<ServiceView>| {
                render::services(v)
            })
            .await
        }
        Query::Leases => {
            fetch(&client, "/v1/l2/leases", o, |v: &Vec<LeaseView>| {
                render::leases(v)
            })
            .await
        }
        Query::LbList => {
            fetch(
                &client,
                "/v1/lb/list",
                o,
                |v: &crate::dataplane::LbListView| {
                    if let Some(note) = &v.note {
                        // On stderr: the table itself stays what scripts parse.
                        eprintln!("note: {note}");
                    }
                    ebpf::render_table(&v.list)
                },
            )
            .await
        }
        Query::Status => fetch(&client, "/v1/status", o, render::status).await,
    }
}

/// Runs a query on a small runtime of its own and prints the answer.
pub fn run(args: &QueryArgs, query: Query) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let out = rt.block_on(ask(args, query))?;
    print!("{out}");
    Ok(())
}
