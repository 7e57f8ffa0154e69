//! `frr-lab`: bring labs up and down, run commands in their nodes, ask their routers.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand};
use frr_lab::lab::{self, DEFAULT_ROOT};
use frr_lab::{Lab, LabOptions, Topology, daemons, demo};

/// Network-namespace labs with FRR, GoBGP and BIRD.
#[derive(Debug, Parser)]
#[command(name = "frr-lab", version, about)]
struct Cli {
    /// Directory holding the labs' files and state.
    #[arg(long, global = true, default_value = DEFAULT_ROOT, env = "FRR_LAB_ROOT")]
    root: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Build a topology (a built-in name such as `seed`, or a YAML file) and leave it running.
    Up {
        /// Built-in topology name or path to a topology file.
        topology: String,
        /// Namespace prefix (default: the topology's name).
        #[arg(long)]
        prefix: Option<String>,
        /// Only namespaces, links, addresses and routes: start no daemon.
        #[arg(long)]
        no_daemons: bool,
    },
    /// Stop a lab's processes and remove its namespaces and files.
    Down {
        /// Built-in topology name or path to a topology file.
        topology: String,
        /// Namespace prefix (default: the topology's name).
        #[arg(long)]
        prefix: Option<String>,
    },
    /// Run a command inside a node's namespace.
    Exec {
        /// The lab (needed when several are up).
        #[arg(long)]
        prefix: Option<String>,
        /// The node.
        node: String,
        /// The command and its arguments (after `--`).
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// Ask an FRR router of a lab: `frr-lab vtysh tor -c 'show bgp summary'`.
    Vtysh {
        /// The lab (needed when several are up).
        #[arg(long)]
        prefix: Option<String>,
        /// The FRR node.
        router: String,
        /// vtysh commands, run in order.
        #[arg(short = 'c', required = true)]
        commands: Vec<String>,
    },
    /// Print the configuration a node's daemon gets (gobgpd TOML, bird.conf or bgpd.conf).
    Config {
        /// Built-in topology name or path to a topology file.
        topology: String,
        /// The node.
        node: String,
    },
    /// List the labs that are up, their nodes and processes.
    Status {
        /// Only this lab.
        #[arg(long)]
        prefix: Option<String>,
    },
    /// The seed lab with lbspeaker on every node: bring it up, show the tor's and a node's
    /// view, take it down.
    Demo {
        /// Leave the lab running afterwards.
        #[arg(long)]
        keep: bool,
        /// Namespace prefix (default: seed).
        #[arg(long)]
        prefix: Option<String>,
    },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("frr-lab: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let root = cli.root;
    match cli.command {
        Command::Up {
            topology,
            prefix,
            no_daemons,
        } => {
            let topology = Topology::load(&topology)?;
            let lab = Lab::up(
                topology,
                LabOptions {
                    prefix,
                    root: root.clone(),
                    start_daemons: !no_daemons,
                    lbspeaker: None,
                },
            )?;
            let prefix = lab.prefix().to_owned();
            let nodes: Vec<String> = lab
                .topology()
                .nodes
                .keys()
                .map(|n| lab.namespace(n))
                .collect();
            lab.persist()?;
            println!("lab {prefix} is up: namespaces {}", nodes.join(" "));
        }
        Command::Down { topology, prefix } => {
            let topology = Topology::load(&topology)?;
            let prefix = prefix.unwrap_or_else(|| topology.name.clone());
            match Lab::attach(&root, &prefix) {
                Ok(lab) => {
                    lab.down()?;
                    println!("lab {prefix} is down");
                }
                Err(frr_lab::LabError::NotFound(_)) => {
                    let removed = lab::down_without_state(&topology, &prefix, &root)?;
                    if removed.is_empty() {
                        println!("lab {prefix} was not up");
                    } else {
                        println!(
                            "lab {prefix} had no state file; removed {}",
                            removed.join(" ")
                        );
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
        Command::Exec {
            prefix,
            node,
            command,
        } => {
            let lab = Lab::attach(&root, &pick_lab(&root, prefix)?)?;
            let Some((program, args)) = command.split_first() else {
                bail!("no command given after --");
            };
            let status = lab
                .command(&node, program)?
                .args(args)
                .status()
                .with_context(|| format!("cannot run {program}"))?;
            return Ok(ExitCode::from(
                status.code().unwrap_or(1).clamp(0, 255) as u8
            ));
        }
        Command::Vtysh {
            prefix,
            router,
            commands,
        } => {
            let lab = Lab::attach(&root, &pick_lab(&root, prefix)?)?;
            for c in commands {
                print!("{}", lab.vtysh(&router, &c)?);
            }
        }
        Command::Config { topology, node } => {
            let topology = Topology::load(&topology)?;
            print!("{}", daemons::config_text(&topology, &node)?);
        }
        Command::Status { prefix } => {
            let labs = match prefix {
                Some(p) => vec![p],
                None => Lab::list(&root),
            };
            if labs.is_empty() {
                println!("no lab is up");
            }
            for p in labs {
                print_status(&mut Lab::attach(&root, &p)?);
            }
        }
        Command::Demo { keep, prefix } => {
            demo::run(
                &demo::DemoOptions {
                    prefix,
                    root,
                    keep,
                    lbspeaker: None,
                },
                &mut std::io::stdout(),
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The lab a command means: the one given, or the only one up.
fn pick_lab(root: &Path, prefix: Option<String>) -> anyhow::Result<String> {
    if let Some(p) = prefix {
        return Ok(p);
    }
    match Lab::list(root).as_slice() {
        [one] => Ok(one.clone()),
        [] => bail!("no lab is up (frr-lab up seed)"),
        many => bail!(
            "several labs are up ({}): choose one with --prefix",
            many.join(", ")
        ),
    }
}

fn print_status(lab: &mut Lab) {
    let state = lab.state().clone();
    println!(
        "lab {} (topology {}), files in {}",
        state.prefix,
        state.topology.name,
        state.dir.display()
    );
    for (name, node) in &state.topology.nodes {
        let ns = lab.namespace(name);
        let present = if lab::namespace_exists(&ns) {
            "up"
        } else {
            "MISSING"
        };
        let procs: Vec<String> = state
            .processes
            .iter()
            .filter(|p| &p.node == name)
            .map(|p| {
                let alive = if lab.is_running(p.pid) {
                    "running"
                } else {
                    "exited"
                };
                format!("{} pid {} {alive}", p.name, p.pid)
            })
            .collect();
        println!(
            "  {name:<8} {:<7} ns {ns:<20} {present:<8} {}",
            node.kind.to_string(),
            procs.join(", ")
        );
    }
}
