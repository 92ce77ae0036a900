//! One process per data directory: an advisory lock on `LOCK`, holding the
//! owner's pid for the error message.

use std::path::Path;

use crate::fs::FileLayer;
use crate::StoreError;

pub(crate) const LOCK_FILE_NAME: &str = "LOCK";

pub(crate) fn lock_dir<F: FileLayer>(fs: &F, dir: &Path) -> Result<F::Lock, StoreError> {
    let path = dir.join(LOCK_FILE_NAME);
    let holder = std::process::id().to_string();
    match fs.try_lock(&path, &holder) {
        Ok(Ok(lock)) => Ok(lock),
        Ok(Err(pid)) => Err(StoreError::Locked {
            dir: dir.to_path_buf(),
            pid,
        }),
        Err(e) => Err(StoreError::io(format!("locking {}", path.display()), e)),
    }
}
