//! `SmallDisk`: a small tmpfs mounted on a fresh directory (unmounted on
//! drop), for disk-full tests on a real file system. Mounting needs root:
//! elsewhere the test is skipped, saying so; under CI (`CI=true` or `CI=1`,
//! where the tests run as root) not mounting is a failure, so the disk-full
//! tests never silently stop running.

use std::path::{Path, PathBuf};
use std::process::Command;

pub struct SmallDisk {
    dir: tempfile::TempDir,
}

/// True when the environment says this is CI (`CI=true` or `CI=1`).
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
}

impl SmallDisk {
    /// A tmpfs of `size_mib` MiB, or None (with a printed reason) where
    /// mounting is not permitted; under CI a panic instead.
    pub fn mount(size_mib: u32) -> Option<SmallDisk> {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size_mib}m"), "tmpfs"])
            .arg(dir.path())
            .output();
        let why = match out {
            Ok(o) if o.status.success() => return Some(SmallDisk { dir }),
            Ok(o) => format!(
                "`mount -t tmpfs` is not permitted here ({})",
                String::from_utf8_lossy(&o.stderr).trim()
            ),
            Err(e) => format!("cannot run mount ({e})"),
        };
        assert!(
            !in_ci(),
            "disk-full test cannot mount its tmpfs under CI: {why}; CI must run it as root"
        );
        eprintln!("SKIPPED disk-full test: {why}; run as root to include it");
        None
    }

    /// The mount point.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `data` under the mount point: where a test puts its data directory.
    pub fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}
