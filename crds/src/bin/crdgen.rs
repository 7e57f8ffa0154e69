//! `crdgen [DIR]`: writes the CustomResourceDefinitions to DIR (default `deploy/crds` of the
//! workspace), one file per definition, and removes nothing else.

use std::path::PathBuf;

use anyhow::Context;

fn main() -> anyhow::Result<()> {
    let dir = match std::env::args_os().nth(1) {
        Some(d) => PathBuf::from(d),
        None => std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .map_or_else(|| PathBuf::from("deploy/crds"), |w| w.join("deploy/crds")),
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    for (file, crd) in crds::crdgen::all()? {
        let path = dir.join(&file);
        std::fs::write(&path, crds::crdgen::render(&crd)?)
            .with_context(|| format!("writing {}", path.display()))?;
        println!("{}", path.display());
    }
    Ok(())
}
