//! `lbspeaker convert metallb FILE...`: prints the cilium.io equivalent of MetalLB manifests.

use std::io::Read as _;
use std::path::{Path, PathBuf};

use clap::Subcommand;

use crate::convert::{self, Input};

/// The `convert` command group.
#[derive(Debug, Subcommand)]
pub enum ConvertCommand {
    /// MetalLB manifests (IPAddressPool, BGPPeer, BGPAdvertisement, L2Advertisement,
    /// Community, BFDProfile) to cilium.io manifests on stdout; what does not map one to one
    /// is reported on stderr.
    Metallb {
        /// Files or directories of YAML manifests (`-` for stdin).
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

/// The exit status when some input could not be converted at all.
pub const EXIT_INCOMPLETE: u8 = 2;

/// Runs a `convert` command; returns whether everything could be read and converted.
pub fn run(cmd: ConvertCommand) -> anyhow::Result<bool> {
    let ConvertCommand::Metallb { files } = cmd;
    let mut inputs = Vec::new();
    for f in &files {
        collect(f, &mut inputs)?;
    }
    let result = convert::convert(&inputs);
    print!("{}", result.to_yaml());
    for w in &result.warnings {
        eprintln!("warning: {w}");
    }
    for e in &result.errors {
        eprintln!("error: {e}");
    }
    Ok(result.errors.is_empty())
}

fn collect(path: &Path, inputs: &mut Vec<Input>) -> anyhow::Result<()> {
    if path.as_os_str() == "-" {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text)?;
        inputs.push(Input {
            origin: "stdin".into(),
            text,
        });
        return Ok(());
    }
    let shown = path.display();
    if path.is_dir() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(|e| anyhow::anyhow!("{shown}: {e}"))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        entries.sort();
        for p in entries {
            let yaml = p.extension().is_some_and(|x| x == "yaml" || x == "yml");
            if p.is_dir() || yaml {
                collect(&p, inputs)?;
            }
        }
        return Ok(());
    }
    let text = std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("{shown}: {e}"))?;
    inputs.push(Input {
        origin: shown.to_string(),
        text,
    });
    Ok(())
}
