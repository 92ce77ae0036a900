use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use anyhow::Context;
use booster_runtime::MasterKey;

use super::Ctx;
use crate::exit;

/// Writes a new master key as hex, mode 0600, refusing to overwrite: a
/// replaced key would make everything encrypted with the old one unreadable.
pub fn keygen(ctx: &Ctx, out: &Path) -> anyhow::Result<i32> {
    write_key(out, &MasterKey::generate())?;
    if ctx.json {
        crate::report::print_json(&serde_json::json!({ "key_file": out }));
    } else {
        ctx.say(format!(
            "wrote a new key to {}; keep a copy somewhere safe: data encrypted with it cannot be read without it",
            out.display()
        ));
    }
    Ok(exit::OK)
}

pub fn write_key(out: &Path, key: &MasterKey) -> anyhow::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(out)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => anyhow::anyhow!(
                "{} already exists; refusing to overwrite a key (pick another --out)",
                out.display()
            ),
            _ => anyhow::anyhow!("cannot create {}: {e}", out.display()),
        })?;
    let mut hex = zeroize::Zeroizing::new(key.to_hex());
    hex.push('\n');
    file.write_all(hex.as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", out.display()))?;
    // The new name must survive a power loss too, or the key is lost while
    // data encrypted with it is not.
    sync_parent_dir(out)
}

/// fsyncs the directory holding `path`, making its entry durable.
fn sync_parent_dir(path: &Path) -> anyhow::Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("syncing the directory {}", dir.display()))
}
