//! Starting each node's daemon inside its namespace, with every file in the node's lab
//! directory: FRR (zebra + bgpd, and bfdd when asked; never `/etc/frr` or the system
//! service), gobgpd and BIRD.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::time::Duration;

use crate::lab::Lab;
use crate::render;
use crate::topology::{NodeKind, Topology};
use crate::{LabError, cmd};

/// How long a daemon may take to start answering its control socket.
const START_TIMEOUT: Duration = Duration::from_secs(15);

/// The gRPC endpoint of gobgpd inside its namespace (each namespace has its own loopback).
pub const GOBGP_API_PORT: &str = "50051";

/// A daemon's command line, behind `taskset -c LIST` when the node pins its daemons to CPUs
/// (`cpus:` in the topology). `ip netns exec` and taskset both exec, so the pid the lab
/// records is the daemon's.
pub fn pinned(lab: &Lab, node: &str, program: &str, args: &[&str]) -> (String, Vec<String>) {
    let cpus = lab.topology().nodes.get(node).and_then(|n| n.cpus.clone());
    match cpus {
        Some(cpus) => {
            let mut all = vec!["-c".to_owned(), cpus, program.to_owned()];
            all.extend(args.iter().map(|a| (*a).to_owned()));
            ("taskset".to_owned(), all)
        }
        None => (
            program.to_owned(),
            args.iter().map(|a| (*a).to_owned()).collect(),
        ),
    }
}

/// Starts a daemon in the foreground through [`Lab::spawn`], pinned as the node says.
fn spawn_pinned(
    lab: &mut Lab,
    node: &str,
    name: &str,
    program: &str,
    args: &[&str],
) -> Result<u32, LabError> {
    let (program, args) = pinned(lab, node, program, args);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    lab.spawn(node, name, &program, &args)
}

/// Whether a process name is one of FRR's daemons.
pub(crate) fn is_frr_daemon(name: &str) -> bool {
    matches!(name, "zebra" | "bgpd" | "bfdd" | "staticd")
}

/// Starts whatever the node's kind runs; nothing for hosts and bridges.
pub(crate) fn start(lab: &mut Lab, node: &str) -> Result<(), LabError> {
    let kind = lab.topology().nodes.get(node).map(|n| n.kind);
    match kind {
        Some(NodeKind::Frr) => start_frr(lab, node),
        Some(NodeKind::Gobgpd) => start_gobgpd(lab, node),
        Some(NodeKind::Bird) => start_bird(lab, node),
        Some(NodeKind::Lbspeaker) => start_lbspeaker(lab, node).map(|_| ()),
        Some(NodeKind::Host | NodeKind::Bridge) | None => Ok(()),
    }
}

/// Starts a node's daemon again (after a test stopped or killed it); returns its pid for
/// lbspeaker nodes.
pub fn restart(lab: &mut Lab, node: &str) -> Result<Option<u32>, LabError> {
    match lab.topology().nodes.get(node).map(|n| n.kind) {
        Some(NodeKind::Lbspeaker) => start_lbspeaker(lab, node).map(Some),
        _ => start(lab, node).map(|_| None),
    }
}

/// The port of `/metrics`, `/healthz` and `/readyz` of an lbspeaker node, on the loopback of
/// its own namespace.
pub const LBSPEAKER_METRICS_PORT: u16 = 9962;

/// The arguments an lbspeaker node's `lbspeaker` is started with.
pub fn lbspeaker_args(lab: &Lab, node: &str) -> Vec<String> {
    let spec = lab
        .topology()
        .nodes
        .get(node)
        .and_then(|n| n.lbspeaker.clone())
        .unwrap_or_default();
    let mut args = vec![
        "run".to_owned(),
        "--config-dir".to_owned(),
        lab.manifest_dir().to_string_lossy().into_owned(),
        "--node".to_owned(),
        spec.node.unwrap_or_else(|| node.to_owned()),
        "--api".to_owned(),
        lab.api_socket(node).to_string_lossy().into_owned(),
        "--metrics-addr".to_owned(),
        format!("127.0.0.1:{LBSPEAKER_METRICS_PORT}"),
    ];
    if spec.bpffs {
        args.push("--bpffs-root".to_owned());
        args.push(
            bpffs_dir(lab, node)
                .join("lbspeaker")
                .to_string_lossy()
                .into_owned(),
        );
    }
    args.extend(spec.args);
    args
}

/// Where an lbspeaker node with `bpffs: true` has its own bpffs mounted.
pub fn bpffs_dir(lab: &Lab, node: &str) -> std::path::PathBuf {
    lab.state().dir.join(node).join("bpffs")
}

/// Mounts the node's bpffs unless it is mounted already (a restart keeps it, and with it the
/// pinned maps and links).
fn mount_bpffs(lab: &Lab, node: &str) -> Result<(), LabError> {
    let dir = bpffs_dir(lab, node);
    if crate::lab::mounts_under(&dir).contains(&dir) {
        return Ok(());
    }
    std::fs::create_dir_all(&dir)
        .map_err(LabError::io(format!("cannot create {}", dir.display())))?;
    cmd::run("mount", &["-t", "bpf", "bpf", &dir.to_string_lossy()]).map(|_| ())
}

fn start_lbspeaker(lab: &mut Lab, node: &str) -> Result<u32, LabError> {
    let dir = lab.node_dir(node)?;
    let Some(bin) = lab.lbspeaker_bin().map(Path::to_owned) else {
        return Err(LabError::Prerequisite(
            "the lbspeaker binary was not found (cargo build -p agent-glue, or set LBSPEAKER_BIN)"
                .into(),
        ));
    };
    let bpffs = lab
        .topology()
        .nodes
        .get(node)
        .and_then(|n| n.lbspeaker.as_ref())
        .is_some_and(|l| l.bpffs);
    if bpffs {
        mount_bpffs(lab, node)?;
    }
    let args = lbspeaker_args(lab, node);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let bin_s = bin.to_string_lossy().into_owned();
    let pid = spawn_pinned(lab, node, "lbspeaker", &bin_s, &args)?;
    let log = dir.join("lbspeaker.log");
    Lab::wait_for(
        &format!("lbspeaker of {node} to answer its API"),
        START_TIMEOUT,
        |_| {
            let out = lab.exec(node, "lbspeaker", &["status"])?;
            Ok(out.status.success().then_some(()))
        },
    )
    .map_err(|e| LabError::Daemon {
        node: node.into(),
        daemon: "lbspeaker".into(),
        message: e.to_string(),
        log,
    })?;
    Ok(pid)
}

/// The configuration file a node's daemon is started with. BIRD's names its log file, which
/// is shown here as `bird.log` in the node's directory.
pub fn config_text(topology: &Topology, node: &str) -> Result<String, LabError> {
    let n = topology.nodes.get(node).ok_or_else(|| {
        LabError::Prerequisite(format!("topology {} has no node {node:?}", topology.name))
    })?;
    let missing =
        || LabError::Prerequisite(format!("node {node} ({}) has no configuration", n.kind));
    match n.kind {
        NodeKind::Frr => match (topology.config_text(node), &n.bgp) {
            (Some(text), _) => Ok(text.to_owned()),
            (None, Some(bgp)) => Ok(render::frr_bgpd_conf(node, bgp)),
            (None, None) => Err(missing()),
        },
        NodeKind::Gobgpd => n.bgp.as_ref().map(render::gobgpd_toml).ok_or_else(missing),
        NodeKind::Bird => n
            .bgp
            .as_ref()
            .map(|b| render::bird_conf(b, "bird.log"))
            .ok_or_else(missing),
        NodeKind::Lbspeaker => Ok(format!(
            "# {node} runs lbspeaker on the lab's shared manifest directory (LAB/manifests/):\n# lbspeaker run --config-dir LAB/manifests --node {} --api LAB/{node}/api.sock --metrics-addr 127.0.0.1:{LBSPEAKER_METRICS_PORT}{}\n{}",
            n.lbspeaker
                .as_ref()
                .and_then(|l| l.node.clone())
                .unwrap_or_else(|| node.to_owned()),
            n.lbspeaker
                .as_ref()
                .map(|l| {
                    let mut extra = String::new();
                    if l.bpffs {
                        extra.push_str(&format!(" --bpffs-root LAB/{node}/bpffs/lbspeaker"));
                    }
                    for a in &l.args {
                        extra.push(' ');
                        extra.push_str(a);
                    }
                    extra
                })
                .unwrap_or_default(),
            topology
                .manifest_files()
                .iter()
                .map(|(name, text)| format!("---\n# {name}\n{text}"))
                .collect::<String>()
        )),
        NodeKind::Host | NodeKind::Bridge => Err(missing()),
    }
}

fn write(path: &Path, text: &str) -> Result<(), LabError> {
    std::fs::write(path, text).map_err(LabError::io(format!("cannot write {}", path.display())))
}

/// FRR's daemons drop privileges to user `frr`: their directory and files must be theirs.
fn give_to_frr(path: &Path) -> Result<(), LabError> {
    let user = nix::unistd::User::from_name("frr")
        .ok()
        .flatten()
        .ok_or_else(|| {
            LabError::Prerequisite("user frr does not exist: apt-get install frr".into())
        })?;
    nix::unistd::chown(path, Some(user.uid), Some(user.gid))
        .map_err(|e| LabError::io(format!("cannot chown {}", path.display()))(e.into()))
}

fn start_frr(lab: &mut Lab, node: &str) -> Result<(), LabError> {
    let dir = lab.node_dir(node)?;
    give_to_frr(&dir)?;
    let spec = lab.topology().nodes.get(node).and_then(|n| n.bgp.clone());
    let bgpd_conf = match (lab.topology().config_text(node), spec) {
        (Some(text), _) => text.to_owned(),
        (None, Some(bgp)) => render::frr_bgpd_conf(node, &bgp),
        (None, None) => {
            return Err(LabError::Prerequisite(format!(
                "frr node {node} has no configuration"
            )));
        }
    };
    let mut files = vec![
        ("zebra.conf", render::frr_zebra_conf(node)),
        ("bgpd.conf", bgpd_conf),
    ];
    let mut daemons = vec!["zebra", "bgpd"];
    if lab.topology().nodes.get(node).is_some_and(|n| n.bfdd) {
        let text = lab
            .topology()
            .bfdd_config_text(node)
            .map_or_else(|| render::frr_bfdd_conf(node), str::to_owned);
        files.push(("bfdd.conf", text));
        // After zebra (bgpd reaches bfdd through it), before bgpd asks for sessions.
        daemons.insert(1, "bfdd");
    }
    for (file, text) in files {
        let path = dir.join(file);
        write(&path, &text)?;
        give_to_frr(&path)?;
    }
    for daemon in daemons {
        start_frr_daemon(lab, node, &dir, daemon)?;
    }
    let log = dir.join("bgpd.log");
    Lab::wait_for(
        &format!("bgpd of {node} to answer vtysh"),
        START_TIMEOUT,
        |_| {
            Ok(lab
                .vtysh(node, "show bgp summary json")
                .is_ok()
                .then_some(()))
        },
    )
    .map_err(|e| LabError::Daemon {
        node: node.into(),
        daemon: "bgpd".into(),
        message: e.to_string(),
        log,
    })
}

/// Starts one FRR daemon, daemonized, and records the pid from its pid file.
pub fn start_frr_daemon(
    lab: &mut Lab,
    node: &str,
    dir: &Path,
    daemon: &str,
) -> Result<u32, LabError> {
    let d = dir.to_string_lossy().into_owned();
    let pid_file = dir.join(format!("{daemon}.pid"));
    let _ = std::fs::remove_file(&pid_file);
    let log = dir.join(format!("{daemon}.log"));
    let program = format!("/usr/lib/frr/{daemon}");
    let args = [
        "-d".to_owned(),
        "-f".to_owned(),
        format!("{d}/{daemon}.conf"),
        "-i".to_owned(),
        pid_file.to_string_lossy().into_owned(),
        "-z".to_owned(),
        format!("{d}/zserv.api"),
        "--vty_socket".to_owned(),
        d.clone(),
        "-P".to_owned(),
        "0".to_owned(),
        "--log".to_owned(),
        format!("file:{}", log.display()),
    ];
    let mut args = args.to_vec();
    if daemon == "bfdd" {
        // Its control socket defaults to /var/run/frr/bfdd.sock: one per lab node instead.
        args.extend(["--bfdctl".to_owned(), format!("{d}/bfdd.sock")]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (program, args) = pinned(lab, node, &program, &args);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = lab.exec(node, &program, &args)?;
    if !out.status.success() {
        return Err(LabError::Daemon {
            node: node.into(),
            daemon: daemon.into(),
            message: format!(
                "exited with {}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
            log,
        });
    }
    let pid = Lab::wait_for(
        &format!("{daemon} of {node} to write its pid file"),
        START_TIMEOUT,
        |_| {
            Ok(std::fs::read_to_string(&pid_file)
                .ok()
                .and_then(|s| s.trim().parse::<u32>().ok()))
        },
    )
    .map_err(|e| LabError::Daemon {
        node: node.into(),
        daemon: daemon.into(),
        message: e.to_string(),
        log: log.clone(),
    })?;
    lab.register(node, daemon, pid);
    Ok(pid)
}

fn start_gobgpd(lab: &mut Lab, node: &str) -> Result<(), LabError> {
    let dir = lab.node_dir(node)?;
    let Some(bgp) = lab.topology().nodes.get(node).and_then(|n| n.bgp.clone()) else {
        return Err(LabError::Prerequisite(format!(
            "gobgpd node {node} has no bgp section"
        )));
    };
    let conf = dir.join("gobgpd.toml");
    write(&conf, &render::gobgpd_toml(&bgp))?;
    let conf_s = conf.to_string_lossy().into_owned();
    let api = format!("127.0.0.1:{GOBGP_API_PORT}");
    spawn_pinned(
        lab,
        node,
        "gobgpd",
        "gobgpd",
        &["-f", &conf_s, "-p", "--api-hosts", &api, "--pprof-disable"],
    )?;
    let log = dir.join("gobgpd.log");
    let daemon_err = |e: LabError| LabError::Daemon {
        node: node.into(),
        daemon: "gobgpd".into(),
        message: e.to_string(),
        log: log.clone(),
    };
    Lab::wait_for(
        &format!("gobgpd of {node} to answer its API"),
        START_TIMEOUT,
        |_| Ok(gobgp(lab, node, &["global"]).is_ok().then_some(())),
    )
    .map_err(daemon_err)?;
    for prefix in &bgp.announce {
        let family = if prefix.addr().is_ipv4() {
            "ipv4"
        } else {
            "ipv6"
        };
        let p = prefix.to_string();
        gobgp(
            lab,
            node,
            &["global", "rib", "-a", family, "add", &p, "origin", "igp"],
        )
        .map_err(daemon_err)?;
    }
    Ok(())
}

/// Runs the `gobgp` client against a node's gobgpd.
pub fn gobgp(lab: &Lab, node: &str, args: &[&str]) -> Result<String, LabError> {
    let mut all = vec!["-u", "127.0.0.1", "-p", GOBGP_API_PORT];
    all.extend_from_slice(args);
    lab.exec_ok(node, "gobgp", &all)
}

fn start_bird(lab: &mut Lab, node: &str) -> Result<(), LabError> {
    let dir = lab.node_dir(node)?;
    let Some(bgp) = lab.topology().nodes.get(node).and_then(|n| n.bgp.clone()) else {
        return Err(LabError::Prerequisite(format!(
            "bird node {node} has no bgp section"
        )));
    };
    let log = dir.join("bird.log");
    let conf = dir.join("bird.conf");
    write(&conf, &render::bird_conf(&bgp, &log.to_string_lossy()))?;
    // BIRD opens its log file itself; make sure it may.
    let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755));
    let conf_s = conf.to_string_lossy().into_owned();
    let ctl = dir.join("bird.ctl").to_string_lossy().into_owned();
    spawn_pinned(
        lab,
        node,
        "bird",
        "bird",
        &["-f", "-c", &conf_s, "-s", &ctl],
    )?;
    Lab::wait_for(
        &format!("bird of {node} to answer birdc"),
        START_TIMEOUT,
        |_| Ok(birdc(lab, node, "show status").is_ok().then_some(())),
    )
    .map_err(|e| LabError::Daemon {
        node: node.into(),
        daemon: "bird".into(),
        message: e.to_string(),
        log,
    })?;
    Ok(())
}

/// Runs `birdc` against a node's BIRD (Unix socket: no namespace needed).
pub fn birdc(lab: &Lab, node: &str, command: &str) -> Result<String, LabError> {
    let ctl = lab.state().dir.join(node).join("bird.ctl");
    let ctl = ctl.to_string_lossy();
    let mut args = vec!["-s", ctl.as_ref()];
    args.extend(command.split_whitespace());
    cmd::run("birdc", &args)
}
