//! `frr-lab`: bring labs up and down, run commands in their nodes, ask their routers.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand};
use frr_lab::lab::{self, DEFAULT_ROOT};
use frr_lab::{Lab, LabOptions, Topology, bench, daemons, demo};

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
    /// Benchmarks: lbspeaker against gobgpd, BIRD and FRR (see docs/BENCHMARKS.md).
    ///
    /// WORKLOAD is announce (1), ingest (2), best-path (3), failure (4), churn (5), or all;
    /// `report` turns result files into tables and plots. Each run writes one JSON file to
    /// --out. Build everything in release mode first: cargo build --release -p frr-lab -p
    /// agent-glue, and run target/release/frr-lab.
    Bench(Box<BenchArgs>),
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

#[derive(Debug, clap::Args)]
struct BenchArgs {
    /// announce | ingest | best-path | failure | churn (or 1-5) | all | report.
    workload: String,
    /// DUTs, in order (default: lbspeaker,gobgpd,bird,frr).
    #[arg(long = "dut", value_delimiter = ',')]
    duts: Vec<String>,
    /// Repeats (failure: trials per case).
    #[arg(long, default_value_t = 3)]
    repeat: usize,
    /// Where result files go (and, for `report`, where they are read from).
    #[arg(long, default_value = "bench-results")]
    out: PathBuf,
    /// `report`: where results.md and the plots go.
    #[arg(long, default_value = "docs/bench")]
    docs: PathBuf,
    /// Pin nothing.
    #[arg(long)]
    no_pin: bool,
    /// The DUT's CPU.
    #[arg(long, default_value_t = 1)]
    dut_cpu: usize,
    /// The CPU of everything else (this process, the tor, the busy loop).
    #[arg(long, default_value_t = 0)]
    helper_cpu: usize,
    /// announce: numbers of service addresses (default 1,10,100,1000,10000).
    #[arg(long, value_delimiter = ',')]
    sizes: Vec<usize>,
    /// announce: lbspeaker's Services get their addresses from LB-IPAM.
    #[arg(long)]
    lb_ipam: bool,
    /// ingest, best-path: IPv4 prefixes per feed (default 1000000).
    #[arg(long)]
    v4: Option<usize>,
    /// ingest, best-path: IPv6 prefixes per feed (default 200000).
    #[arg(long)]
    v6: Option<usize>,
    /// ingest, best-path: attribute sets per family (default 10000).
    #[arg(long)]
    sets: Option<usize>,
    /// failure: hold/keepalive pairs (default 9/3,3/1).
    #[arg(long, value_delimiter = ',')]
    timers: Vec<String>,
    /// failure: link-cut, freeze, loss, graceful-restart (default all).
    #[arg(long, value_delimiter = ',')]
    cases: Vec<String>,
    /// churn: seconds of flapping (default 60).
    #[arg(long)]
    churn_seconds: Option<u64>,
    /// churn: updates per second (default 1000).
    #[arg(long)]
    churn_rate: Option<u32>,
    /// churn: base routes (default 10000).
    #[arg(long)]
    churn_base: Option<usize>,
    /// churn: flapping prefixes (default 1000).
    #[arg(long)]
    churn_flapping: Option<usize>,
    /// churn: the CPU the busy loop saturates, or `none` (default: the helpers' CPU).
    #[arg(long)]
    busy_cpu: Option<String>,
    /// Copy the labs' logs and configurations here when each lab goes away.
    #[arg(long)]
    keep_logs: Option<PathBuf>,
    /// The busy loop itself (internal): its CPU.
    #[arg(long, hide = true)]
    cpu: Option<usize>,
    /// The busy loop itself (internal): its time limit.
    #[arg(long, hide = true)]
    seconds: Option<u64>,
}

fn bench_options(a: &BenchArgs, root: &Path) -> anyhow::Result<bench::BenchOptions> {
    let mut o = bench::BenchOptions {
        repeat: a.repeat.max(1),
        lab_root: root.to_owned(),
        pin: (!a.no_pin).then_some((a.dut_cpu, a.helper_cpu)),
        lb_ipam: a.lb_ipam,
        keep_logs: a.keep_logs.clone(),
        ..bench::BenchOptions::default()
    };
    if !a.duts.is_empty() {
        o.duts = a
            .duts
            .iter()
            .map(|d| {
                bench::Dut::parse(d)
                    .with_context(|| format!("unknown DUT {d:?}: lbspeaker, gobgpd, bird or frr"))
            })
            .collect::<anyhow::Result<_>>()?;
    }
    if !a.sizes.is_empty() {
        o.sizes = a.sizes.clone();
    }
    o.v4 = a.v4.unwrap_or(o.v4);
    o.v6 = a.v6.unwrap_or(o.v6);
    o.sets = a.sets.unwrap_or(o.sets).max(1);
    if !a.timers.is_empty() {
        o.timers = a
            .timers
            .iter()
            .map(|t| {
                let (h, k) = t
                    .split_once('/')
                    .with_context(|| format!("timers {t:?}: HOLD/KEEPALIVE"))?;
                Ok((h.parse()?, k.parse()?))
            })
            .collect::<anyhow::Result<_>>()?;
    }
    if !a.cases.is_empty() {
        o.failures = a
            .cases
            .iter()
            .map(|c| bench::failure::Case::parse(c).with_context(|| format!("unknown case {c:?}")))
            .collect::<anyhow::Result<_>>()?;
    }
    o.churn_seconds = a.churn_seconds.unwrap_or(o.churn_seconds);
    o.churn_rate = a.churn_rate.unwrap_or(o.churn_rate).max(1);
    o.churn_base = a.churn_base.unwrap_or(o.churn_base).max(1);
    o.churn_flapping = a.churn_flapping.unwrap_or(o.churn_flapping).max(1);
    o.busy_cpu = match a.busy_cpu.as_deref() {
        None => o.pin.map(|p| p.1).or(Some(0)),
        Some("none") => None,
        Some(c) => Some(c.parse().with_context(|| format!("--busy-cpu {c:?}"))?),
    };
    Ok(o)
}

fn run_bench(a: &BenchArgs, root: &Path) -> anyhow::Result<()> {
    match a.workload.as_str() {
        "report" => {
            let w = bench::report::write(&a.out, &a.docs)?;
            println!("wrote {} and {} plots", w.markdown.display(), w.plots.len());
            return Ok(());
        }
        "busy" => {
            bench::sys::spin(
                a.cpu.unwrap_or(0),
                std::time::Duration::from_secs(a.seconds.unwrap_or(60)),
            )?;
            return Ok(());
        }
        _ => {}
    }
    let workloads = if a.workload == "all" {
        bench::Workload::ALL.to_vec()
    } else {
        vec![bench::Workload::parse(&a.workload).with_context(|| {
            format!(
                "unknown workload {:?}: announce, ingest, best-path, failure, churn (or 1-5), all, report",
                a.workload
            )
        })?]
    };
    let opts = bench_options(a, root)?;
    bench::interrupt::install();
    for w in workloads {
        let results = bench::run(w, &opts)?;
        let file = results.write(&a.out)?;
        println!("{}: results in {}", w.name(), file.display());
    }
    Ok(())
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
        Command::Bench(args) => run_bench(&args, &root)?,
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
