//! The dirmon watcher (issue 14): turns each file that arrives in a watched
//! directory into one sliced job with the file's contents uploaded, and
//! moves the file into the entry's archive. The entries are the runtime's
//! (`Runtime::dirmons`, durable); this is the half that touches files.
//! ARCHITECTURE.md ("Dirmon") has the protocol and why a crash at any
//! point neither loses a file nor runs it twice; in short:
//!
//! 1. claim: `rename(DIR/name, ARCHIVE/.booster-inbox/NAME)`, fsync both;
//! 2. submit the job (its properties name NAME; the runtime leases
//!    nothing of it until its upload completes);
//! 3. upload the file and finish;
//! 4. archive: `rename(inbox/NAME, ARCHIVE/NAME)`, fsync both.
//!
//! Every pass settles what is in the inbox first (`settle_inbox`), from
//! what the store says about NAME's job, so a pass after a crash and a
//! pass after a transient error are the same code.

mod dirs;
mod take;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use booster_runtime::{DirmonId, DirmonView, Runtime};
use globset::GlobMatcher;
use tokio::sync::watch;

pub use take::{
    check_entry, parse_job_options, parse_options, split_add_words, split_remote_add_words,
    take_flags, AddWords, INBOX,
};

/// How the watcher runs.
#[derive(Clone, Debug)]
pub struct Config {
    /// Directories (and their trees) an entry's directory and archive must
    /// be under; an entry outside is not watched.
    pub allow: Vec<PathBuf>,
    /// The safety-net rescan of every entry's directory.
    pub rescan: Duration,
}

/// A running watcher; `stop` ends it between files (a file being taken
/// is finished or left for the next start to settle).
pub struct Watcher {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Watcher {
    /// Starts watching every entry of `runtime` that `config.allow` allows.
    /// The allowed directories must exist.
    pub fn spawn(runtime: Runtime, config: Config) -> anyhow::Result<Watcher> {
        let allow = resolve_allow(&config.allow)?;
        let config = Config { allow, ..config };
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(run(runtime, config, stopped));
        Ok(Watcher { stop, task })
    }

    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// Held by the watcher from a file's claim until it is settled, and by
/// `POST /api/dirmons/{id}/remove|pause` around its check and change: a
/// removal never lands between an entry's check and its next claim.
pub static TAKING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// `--dirmon-allow`'s directories with every symlink and `..` resolved.
pub fn resolve_allow(dirs: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    dirs.iter()
        .map(|dir| {
            dir.canonicalize().map_err(|e| {
                anyhow::anyhow!(
                    "--dirmon-allow {}: {e}; give directories that exist",
                    dir.display()
                )
            })
        })
        .collect()
}

/// Why an entry would not be watched under `allow` (resolved), if it
/// would not: what `POST /api/dirmons` refuses. Options that name a file
/// on this host (`--layout`) are refused too: a client never decides what
/// the server reads.
pub fn refusal(view: &DirmonView, allow: &[PathBuf]) -> Option<String> {
    if view
        .spec
        .options
        .iter()
        .any(|w| w.split('=').next() == Some("--layout"))
    {
        return Some(
            "--layout names a file on the server; over HTTP a dirmon entry cannot read one (add it with the local CLI)".into(),
        );
    }
    open_entry(view, allow).err()
}

/// One watched entry and what its scans have seen.
struct Entry {
    view: DirmonView,
    dir: PathBuf,
    glob: GlobMatcher,
    archive: PathBuf,
    /// Files seen but not yet settled: size, mtime, and since when both
    /// have stayed as they are.
    seen: HashMap<PathBuf, (u64, SystemTime, Instant)>,
    /// Problems already reported, so a rescan does not repeat them.
    told: BTreeSet<String>,
    /// The inbox's lock, held while the entry is watched.
    lock: Option<std::fs::File>,
    /// The directory, archive and inbox as this pass opened them
    /// (`still_in_place`); every file operation of the pass goes through
    /// them.
    dirs: Option<std::sync::Arc<dirs::Dirs>>,
}

impl Entry {
    fn tell(&mut self, what: String) {
        if self.told.len() >= 1024 {
            // Bounded: an old problem may be said once more.
            self.told.clear();
        }
        if self.told.insert(what.clone()) {
            eprintln!("booster dirmon {}: {what}", self.view.id);
        }
    }

    /// Whether the directory and the archive are still the ones checked
    /// against the allowlist: a directory replaced by a symlink (or moved)
    /// since would lead the watcher outside it. Checked at every pass, by
    /// opening them (`dirs.rs`): the pass then works through what it
    /// opened, so a swap during the pass is never followed either.
    fn still_in_place(&mut self) -> bool {
        match dirs::Dirs::open(&self.dir, &self.archive) {
            Ok(dirs) => {
                // The inbox moved away and made again: the lock held is on
                // the old one; take the new one's, or leave it to the
                // watcher that has it.
                if !dirs::holds_lock(&dirs, self.lock.as_ref()) {
                    match dirs::lock_at(&dirs) {
                        Ok(lock) => self.lock = Some(lock),
                        Err(why) => {
                            self.dirs = None;
                            self.tell(why);
                            return false;
                        }
                    }
                }
                self.dirs = Some(std::sync::Arc::new(dirs));
                true
            }
            Err(why) => {
                self.dirs = None;
                self.tell(why);
                false
            }
        }
    }
}

async fn run(runtime: Runtime, config: Config, mut stopped: watch::Receiver<bool>) {
    let (events, mut woken) = tokio::sync::mpsc::unbounded_channel::<()>();
    let mut notifier = notify::recommended_watcher(move |_: notify::Result<notify::Event>| {
        let _ = events.send(());
    })
    .map_err(|e| eprintln!("booster dirmon: no file events ({e}); rescanning only"))
    .ok();
    let mut entries: BTreeMap<DirmonId, Entry> = BTreeMap::new();
    let mut refused: BTreeMap<DirmonId, String> = BTreeMap::new();
    let mut watched: BTreeSet<PathBuf> = BTreeSet::new();
    loop {
        sync_entries(&runtime, &config, &mut entries, &mut refused);
        if let Some(n) = notifier.as_mut() {
            watch_dirs(n, &entries, &mut watched);
        }
        let mut wake = config.rescan;
        for entry in entries.values_mut() {
            if *stopped.borrow() {
                return;
            }
            if !entry.still_in_place() {
                continue;
            }
            // A paused entry takes no new file, but finishes the ones it took.
            take::settle_inbox(&runtime, entry, &mut stopped).await;
            if entry.view.paused {
                continue;
            }
            if let Some(next) = take::scan(&runtime, entry, &mut stopped).await {
                wake = wake.min(next);
            }
        }
        tokio::select! {
            () = async { let _ = stopped.wait_for(|s| *s).await; } => return,
            _ = woken.recv() => {
                // Let a burst of events (a file being written) settle into one pass.
                tokio::time::sleep(Duration::from_millis(20)).await;
                while woken.try_recv().is_ok() {}
            }
            () = tokio::time::sleep(wake) => {}
        }
    }
}

/// Brings `entries` in line with the runtime's: new ones checked against
/// the allowlist (a refusal is said once), removed ones dropped, pause
/// flags refreshed.
fn sync_entries(
    runtime: &Runtime,
    config: &Config,
    entries: &mut BTreeMap<DirmonId, Entry>,
    refused: &mut BTreeMap<DirmonId, String>,
) {
    let views = runtime.dirmons();
    let ids: BTreeSet<DirmonId> = views.iter().map(|v| v.id).collect();
    entries.retain(|id, _| ids.contains(id));
    refused.retain(|id, _| ids.contains(id));
    for view in views {
        if let Some(entry) = entries.get_mut(&view.id) {
            entry.view = view;
            continue;
        }
        let opened = open_entry(&view, &config.allow).and_then(|entry| {
            let feeds = entries
                .values()
                .find(|other| other.dir == entry.archive || other.archive == entry.dir);
            match feeds {
                Some(other) => Err(format!(
                    "its archive or directory is dirmon {}'s directory or archive: one would take the other's files again",
                    other.view.id
                )),
                None => Ok(entry),
            }
        });
        match opened.and_then(|mut entry| lock_inbox(&mut entry).map(|()| entry)) {
            Ok(entry) => {
                refused.remove(&view.id);
                eprintln!(
                    "booster dirmon {}: watching {} (archive {})",
                    view.id,
                    view.spec.pattern,
                    entry.archive.display()
                );
                entries.insert(view.id, entry);
            }
            Err(why) => {
                if refused.get(&view.id) != Some(&why) {
                    eprintln!("booster dirmon {}: not watched: {why}", view.id);
                    refused.insert(view.id, why);
                }
            }
        }
    }
}

/// Holds the lock of the entry's inbox (`INBOX/.lock`, flock) for as
/// long as the entry is watched: a second watcher (another data directory
/// with an entry on the same archive) is refused rather than settle files
/// it did not take.
fn lock_inbox(entry: &mut Entry) -> Result<(), String> {
    let dirs = dirs::Dirs::open(&entry.dir, &entry.archive)?;
    entry.lock = Some(dirs::lock_at(&dirs)?);
    Ok(())
}

/// Refuses to remove an entry whose inbox still holds files it took: they
/// would be left there, neither a finished job nor back in the directory.
pub fn check_removable(view: &DirmonView) -> Result<(), String> {
    let left = inbox_files(view);
    if left.is_empty() {
        return Ok(());
    }
    Err(format!(
        "dirmon {} still has {} file(s) in {} ({}); a watcher finishes them (`booster work --dirmon-allow DIR`): pause the entry, let them finish, then remove it",
        view.id,
        left.len(),
        Path::new(&view.spec.archive).join(INBOX).display(),
        left.join(", ")
    ))
}

/// An entry's files in its inbox: taken, not archived yet.
pub fn inbox_files(view: &DirmonView) -> Vec<String> {
    let inbox = Path::new(&view.spec.archive).join(INBOX);
    let prefix = |name: &str| take::claimed_by(name) == Some(view.id);
    std::fs::read_dir(inbox)
        .map(|l| {
            l.flatten()
                .filter_map(|e| e.file_name().to_str().map(str::to_string))
                .filter(|n| prefix(n))
                .collect()
        })
        .unwrap_or_default()
}

/// An entry ready to watch, or why not: its directory and archive must
/// exist, be directories, and lie under an allowed directory once every
/// symlink and `..` is resolved.
fn open_entry(view: &DirmonView, allow: &[PathBuf]) -> Result<Entry, String> {
    let (dir, glob) = view.spec.split_pattern()?;
    let glob = globset::Glob::new(glob)
        .map_err(|e| format!("its file-name glob {glob:?} is not valid: {e}"))?
        .compile_matcher();
    let dir = real_dir(Path::new(dir), "directory")?;
    let archive = real_dir(Path::new(&view.spec.archive), "archive")?;
    for (what, path) in [("directory", &dir), ("archive", &archive)] {
        if !allow.iter().any(|a| path.starts_with(a)) {
            return Err(format!(
                "its {what} {} is outside --dirmon-allow ({}); allow it where the watcher runs",
                path.display(),
                list(allow)
            ));
        }
    }
    if archive == dir {
        return Err(
            "its archive is its own directory: archived files would be taken again; give another"
                .into(),
        );
    }
    Ok(Entry {
        view: view.clone(),
        dir,
        glob,
        archive,
        seen: HashMap::new(),
        told: BTreeSet::new(),
        lock: None,
        dirs: None,
    })
}

fn real_dir(path: &Path, what: &str) -> Result<PathBuf, String> {
    let real = path
        .canonicalize()
        .map_err(|e| format!("its {what} {}: {e}; create it first", path.display()))?;
    if !real.is_dir() {
        return Err(format!("its {what} {} is not a directory", path.display()));
    }
    Ok(real)
}

fn list(paths: &[PathBuf]) -> String {
    if paths.is_empty() {
        return "none given".into();
    }
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Watches the directories of the entries, and no others.
fn watch_dirs(
    notifier: &mut notify::RecommendedWatcher,
    entries: &BTreeMap<DirmonId, Entry>,
    watched: &mut BTreeSet<PathBuf>,
) {
    use notify::{RecursiveMode, Watcher as _};
    let want: BTreeSet<PathBuf> = entries.values().map(|e| e.dir.clone()).collect();
    for gone in watched.difference(&want).cloned().collect::<Vec<_>>() {
        let _ = notifier.unwatch(&gone);
        watched.remove(&gone);
    }
    for dir in want {
        if !watched.contains(&dir) && notifier.watch(&dir, RecursiveMode::NonRecursive).is_ok() {
            watched.insert(dir);
        }
    }
}
