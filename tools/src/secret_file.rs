//! Files that hold secrets (the master key, bearer tokens) must be private
//! to their owner: a key or token that other users can read is a key or
//! token they hold. Reading one checks its permissions first and refuses,
//! saying how to fix it.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use anyhow::{bail, Context};

/// Refuses `path` when its group or others have any permission on it.
/// `what` names the file in the message ("key file", "token file").
pub fn check_private(path: &Path, what: &str) -> anyhow::Result<()> {
    let meta = std::fs::metadata(path)
        .with_context(|| format!("cannot read the {what} {}", path.display()))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        bail!(
            "the {what} {} has mode {mode:04o}: other users can read it; \
             make it private with: chmod 600 {}",
            path.display(),
            path.display()
        );
    }
    Ok(())
}

/// Reads a secret file as text after [`check_private`].
pub fn read_private(path: &Path, what: &str) -> anyhow::Result<String> {
    check_private(path, what)?;
    std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the {what} {}", path.display()))
}

/// Writes (creating or replacing) a file only its owner can read: for
/// token files made by scripts and tests. Keys are written by `keygen`,
/// which never replaces one.
pub fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    file.write_all(contents)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_group_or_world_readable_secret_is_refused_with_the_chmod_to_run() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "secret").unwrap();
        for mode in [0o644, 0o640, 0o604, 0o660] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            let err = read_private(&path, "token file").unwrap_err().to_string();
            assert!(
                err.contains(&format!("chmod 600 {}", path.display())),
                "{mode:o}: {err}"
            );
        }
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(read_private(&path, "token file").unwrap(), "secret");
    }
}
