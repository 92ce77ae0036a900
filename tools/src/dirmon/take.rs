//! Taking files: scan, claim, submit, upload, archive, and settling what a
//! crash or an error left in the inbox. See the module above for the steps.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use booster_runtime::{JobId, Runtime};
use clap::Parser;
use serde_json::json;
use tokio::sync::watch;

use super::dirs::{self, Dirs};
use super::Entry;
use crate::cli::JobInputArgs;
use crate::commands::run::{job_spec, options_spec, read_options};
use crate::formats::open_source_with;
use crate::formats::props;
use crate::kinds;
use crate::pump::{pump, PumpError};

/// The inbox under an archive: files claimed, not yet archived.
pub const INBOX: &str = ".booster-inbox";

/// Where a file goes that cannot become a job (its options or its contents
/// make no job: a CSV header without a required column, say), beside a
/// `NAME.why` that says why.
pub const REJECTED: &str = ".booster-rejected";

/// Makes claimed names unique within a millisecond.
static CLAIMS: AtomicU64 = AtomicU64::new(0);

/// The job options of an entry, read as `booster submit` reads them.
#[derive(Parser, Debug)]
#[command(name = "dirmon", no_binary_name = true)]
struct Words {
    #[command(flatten)]
    job: JobInputArgs,
}

/// Parses an entry's job options for a file at `input`.
pub fn parse_options(options: &[String], input: &Path) -> anyhow::Result<JobInputArgs> {
    parse_job_options("dirmon", options, input)
}

/// Parses the job options `command` (dirmon, batch) stores or passes on,
/// for a file at `input`.
pub fn parse_job_options(
    command: &str,
    options: &[String],
    input: &Path,
) -> anyhow::Result<JobInputArgs> {
    for word in options {
        let flag = word.split('=').next().unwrap_or_default();
        if ["--input", "--args"].contains(&flag) {
            anyhow::bail!(
                "{command} job options cannot hold {flag}: each file is its own job's input"
            );
        }
        if flag == "--after" {
            let why = if command == "dirmon" {
                "each file's job starts once its file is in"
            } else {
                "the on-complete job is the one that waits"
            };
            anyhow::bail!(
                "{command} job options cannot hold --after: {why}; submit the dependent job yourself with `booster submit --after`"
            );
        }
    }
    let mut words = options.to_vec();
    words.push("--input".into());
    words.push(input.display().to_string());
    let parsed = Words::try_parse_from(&words).map_err(|e| {
        let text = e.render().to_string();
        // Clap names the parser; the user typed `booster COMMAND`.
        let text = text.replace("Usage: dirmon ", &format!("Usage: booster {command} ... "));
        anyhow::anyhow!(
            "{command} job options {}: {}",
            options.join(" "),
            text.trim_end()
        )
    })?;
    let job = parsed.job;
    if !kinds::SLICED_KINDS.contains(&job.kind.as_str()) {
        anyhow::bail!(
            "no job kind {:?} here; {command} makes sliced jobs of {}",
            job.kind,
            kinds::SLICED_KINDS.join(", ")
        );
    }
    Ok(job)
}

/// What can be checked of a dirmon entry before any file arrives: its job
/// options as a job of them would be checked (window, `--cmd` with its
/// kind, the read options, the runtime's limits), and that its directory
/// and archive are not another entry's. A file then never meets an entry
/// that can make no job of it.
pub fn check_entry(runtime: &Runtime, spec: &booster_runtime::DirmonSpec) -> anyhow::Result<()> {
    let (dir, glob) = spec.split_pattern().map_err(anyhow::Error::msg)?;
    // A name the pattern matches stands for the files: its extension says
    // the format, as a file's would.
    let sample = glob.replace(['*', '?', '[', ']', '{', '}'], "x");
    let args = parse_options(&spec.options, Path::new(&sample))?;
    let job = options_spec(&args, json!({}))?;
    // The read options' own rules (`--format fixed` needs `--layout`, the
    // column options are for delimited formats, ...), on no bytes.
    let read = read_options(&args)?;
    if read.format != crate::formats::Format::Xlsx {
        crate::formats::source_from_reader_with(
            Box::new(std::io::empty()),
            Default::default(),
            &read,
            &sample,
        )?;
    }
    runtime.check_spec(&job)?;
    let real = |p: &str| std::fs::canonicalize(p).unwrap_or_else(|_| Path::new(p).to_path_buf());
    let (dir, archive) = (real(dir), real(&spec.archive));
    for other in runtime.dirmons() {
        let Ok((other_dir, _)) = other.spec.split_pattern() else {
            continue;
        };
        let (other_dir, other_archive) = (real(other_dir), real(&other.spec.archive));
        if archive == other_archive {
            anyhow::bail!(
                "dirmon {} already archives into {}: give each entry its own archive",
                other.id,
                archive.display()
            );
        }
        if archive == other_dir || dir == other_archive {
            anyhow::bail!(
                "dirmon {} watches or archives into {}: one entry would take the other's files again",
                other.id,
                if archive == other_dir { &archive } else { &dir }.display()
            );
        }
    }
    Ok(())
}

/// `booster dirmon add`'s words: the entry's own options, and the job
/// options, which it stores as given.
#[derive(Debug, PartialEq, Eq)]
pub struct AddWords {
    pub pattern: String,
    pub archive: String,
    pub settle_ms: u64,
    pub options: Vec<String>,
}

impl AddWords {
    /// The entry these words describe.
    pub fn spec(&self) -> booster_runtime::DirmonSpec {
        booster_runtime::DirmonSpec {
            pattern: self.pattern.clone(),
            archive: self.archive.clone(),
            settle_ms: self.settle_ms,
            options: self.options.clone(),
        }
    }
}

/// The flags `take_flags` took, as (flag, value) in order, and the rest.
pub type TakenFlags = (Vec<(String, String)>, Vec<String>);

/// Takes the flags `own` (each with a value, `--flag V` or `--flag=V`) out
/// of a command's words, in order; the other words are left, as given, for
/// the job options. `dirmon add` and `batch` read their words this way.
pub fn take_flags(words: &[String], own: &[&str]) -> anyhow::Result<TakenFlags> {
    let mut taken = Vec::new();
    let mut rest = Vec::new();
    let mut i = 0;
    while i < words.len() {
        let word = &words[i];
        let (flag, inline) = match word.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f, Some(v.to_string())),
            _ => (word.as_str(), None),
        };
        if !own.contains(&flag) {
            rest.push(word.clone());
            i += 1;
            continue;
        }
        let value = match inline {
            Some(v) => v,
            None => {
                i += 1;
                words
                    .get(i)
                    .cloned()
                    .ok_or_else(|| crate::exit::usage(format!("{flag} needs a value")))?
            }
        };
        taken.push((flag.to_string(), value));
        i += 1;
    }
    Ok((taken, rest))
}

/// Splits `dirmon add`'s words into the entry's (`--pattern`, `--archive`,
/// `--settle`) and the job options, checks the job options, and makes the
/// paths absolute (the watcher may run elsewhere).
pub fn split_add_words(words: &[String]) -> anyhow::Result<AddWords> {
    split_words(words, absolute)
}

/// `dirmon add` through `--server`: the paths are the server's, so they
/// must already be absolute (this host's directory means nothing there).
pub fn split_remote_add_words(words: &[String]) -> anyhow::Result<AddWords> {
    split_words(words, |path| {
        if Path::new(path).is_absolute() {
            Ok(path.to_string())
        } else {
            Err(crate::exit::usage(format!(
                "{path} is relative; through --server, --pattern and --archive are paths on the server: give them absolute"
            )))
        }
    })
}

fn split_words(
    words: &[String],
    absolute: impl Fn(&str) -> anyhow::Result<String>,
) -> anyhow::Result<AddWords> {
    let mut pattern = None;
    let mut archive = None;
    let mut settle_ms = booster_runtime::DIRMON_DEFAULT_SETTLE_MS;
    let (taken, options) = take_flags(words, &["--pattern", "--archive", "--settle"])?;
    for (flag, value) in taken {
        match flag.as_str() {
            "--pattern" => pattern = Some(value),
            "--archive" => archive = Some(value),
            _ => settle_ms = parse_settle(&value).map_err(crate::exit::usage)?,
        }
    }
    let pattern = pattern.ok_or_else(|| {
        crate::exit::usage(
            "dirmon add needs --pattern 'DIR/GLOB', such as --pattern '/data/in/*.csv'",
        )
    })?;
    let archive = archive.ok_or_else(|| {
        crate::exit::usage("dirmon add needs --archive DIR: where taken files are moved")
    })?;
    parse_options(&options, Path::new("input")).map_err(|e| crate::exit::usage(e.to_string()))?;
    let words = AddWords {
        pattern: absolute(&pattern)?,
        archive: absolute(&archive)?,
        settle_ms,
        options,
    };
    words.spec().split_pattern().map_err(crate::exit::usage)?;
    Ok(words)
}

fn absolute(path: &str) -> anyhow::Result<String> {
    Ok(std::path::absolute(path)
        .with_context(|| format!("making {path} absolute"))?
        .display()
        .to_string())
}

/// `--settle 5s`, `500ms`, `2m`, or seconds.
fn parse_settle(text: &str) -> Result<u64, String> {
    crate::cli::duration_ms(text)
        .ok_or_else(|| format!("--settle {text:?}: give a time such as 5s, 500ms or 2m"))
}

/// Scans the entry's directory: remembers files not yet settled, and takes
/// the settled ones, oldest name first. Returns how soon the next of the
/// remembered files may settle (None: none remembered).
pub async fn scan(
    runtime: &Runtime,
    entry: &mut Entry,
    stopped: &mut watch::Receiver<bool>,
) -> Option<Duration> {
    let settle = Duration::from_millis(entry.view.spec.settle_ms);
    let dirs = entry.dirs.clone()?;
    let listing = match std::fs::read_dir(dirs.in_dir("")) {
        Ok(listing) => listing,
        Err(e) => {
            entry.tell(format!("cannot read {}: {e}", entry.dir.display()));
            return None;
        }
    };
    let now = Instant::now();
    let mut present = std::collections::HashSet::new();
    let mut due = Vec::new();
    let mut next: Option<Duration> = None;
    for item in listing.flatten() {
        let name = item.file_name();
        let Some(name) = name.to_str() else {
            entry.tell(format!(
                "{:?}: not a UTF-8 name; left alone",
                item.file_name()
            ));
            continue;
        };
        if name.starts_with('.')
            || name.ends_with(".partial")
            || name.ends_with(".tmp")
            || !entry.glob.is_match(name)
        {
            continue;
        }
        // Not followed: a symlink is not a file that arrived.
        let Some(stamp) = file_stamp(&dirs.dir, name) else {
            continue;
        };
        let path = entry.dir.join(name);
        present.insert(path.clone());
        match entry.seen.get(&path) {
            Some(&(len, mtime, since)) if (len, mtime) == stamp => {
                let still = now.saturating_duration_since(since);
                if still >= settle {
                    due.push(path);
                } else {
                    next = Some(next.map_or(settle - still, |n| n.min(settle - still)));
                }
            }
            _ => {
                entry.seen.insert(path, (stamp.0, stamp.1, now));
                next = Some(next.map_or(settle, |n| n.min(settle)));
            }
        }
    }
    entry.seen.retain(|p, _| present.contains(p));
    due.sort();
    for path in due {
        if *stopped.borrow() {
            break;
        }
        let Some((len, mtime, _)) = entry.seen.remove(&path) else {
            continue;
        };
        // The list is as old as the uploads before this file took: look
        // again, right before the claim. A file that changed, or is no
        // longer a plain file (a symlink or a FIFO swapped in), waits for
        // the next scan.
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        // Held from the claim until the file is settled; `dirmon remove`
        // over HTTP takes it too. The entry may have gone or been paused
        // while this pass waited for it.
        let _taking = super::TAKING.lock().await;
        if !runtime
            .dirmons()
            .iter()
            .any(|d| d.id == entry.view.id && !d.paused)
        {
            break;
        }
        if !still_settled(&dirs, name, (len, mtime), settle) {
            continue;
        }
        match claim(entry, &dirs, name) {
            Ok(name) => settle_one(runtime, entry, &name, stopped).await,
            Err(e) => entry.tell(format!("{}: not taken: {e}", path.display())),
        }
    }
    next
}

/// Size and modification time of the plain file `name` in `dir`; None for
/// anything else (a symlink is not followed) or nothing.
fn file_stamp(dir: &std::os::fd::OwnedFd, name: &str) -> Option<(u64, SystemTime)> {
    match dirs::kind_at(dir, name) {
        Ok(Some((rustix::fs::FileType::RegularFile, len, secs, nanos))) => {
            let mtime = UNIX_EPOCH
                + Duration::from_secs(secs.max(0) as u64)
                + Duration::from_nanos(nanos.max(0) as u64);
            Some((len, mtime))
        }
        _ => None,
    }
}

/// Whether `name` is still the plain file scanned, unchanged, and last
/// written at least `settle` ago.
fn still_settled(dirs: &Dirs, name: &str, stamp: (u64, SystemTime), settle: Duration) -> bool {
    file_stamp(&dirs.dir, name).is_some_and(|now| {
        now == stamp
            && SystemTime::now()
                .duration_since(now.1)
                .is_ok_and(|age| age >= settle)
    })
}

/// Step 1: moves the file into the inbox under a unique name, durably.
fn claim(entry: &Entry, dirs: &Dirs, original: &str) -> anyhow::Result<String> {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis();
    let n = CLAIMS.fetch_add(1, Ordering::Relaxed);
    let name = format!("{ms}-{}-{n}-{original}", entry.view.id);
    let inbox = entry.archive.join(INBOX);
    dirs::rename_new(&dirs.dir, original, &dirs.inbox, &name).map_err(|e| {
        if e.kind() == std::io::ErrorKind::CrossesDevices {
            anyhow::anyhow!(
                "{} and the archive {} are on different file systems; put the archive on the same one, so a move is one rename",
                entry.dir.display(),
                entry.archive.display()
            )
        } else {
            anyhow::anyhow!("moving it into {}: {e}", inbox.display())
        }
    })?;
    fsync_dir(&dirs.dir, &entry.dir)?;
    fsync_dir(&dirs.inbox, &inbox)?;
    // What was renamed is what a reader will open: it must be a plain file
    // (a symlink swapped in after the check would read outside the
    // allowlist; a FIFO would block the watcher).
    if !dirs::is_file_at(&dirs.inbox, &name) {
        reject(
            entry,
            dirs,
            &name,
            "not a plain file (a symlink, a FIFO or a device); never read",
        )?;
        anyhow::bail!("not a plain file; moved to {REJECTED}");
    }
    Ok(name)
}

/// Moves inbox file `name` to the rejected folder with a note of why.
fn reject(entry: &Entry, dirs: &Dirs, name: &str, why: &str) -> anyhow::Result<()> {
    let rejected_path = entry.archive.join(REJECTED);
    let rejected = dirs::sub_dir(&dirs.archive, REJECTED)
        .with_context(|| format!("opening {}", rejected_path.display()))?;
    dirs::write_at(&rejected, &format!("{name}.why"), &format!("{why}\n"))
        .with_context(|| format!("writing {name}.why in {}", rejected_path.display()))?;
    dirs::rename_new(&dirs.inbox, name, &rejected, name)
        .with_context(|| format!("moving {name} to {}", rejected_path.display()))?;
    fsync_dir(&dirs.inbox, &entry.archive.join(INBOX))?;
    fsync_dir(&rejected, &rejected_path)
}

fn fsync_dir(dir: &std::os::fd::OwnedFd, path: &Path) -> anyhow::Result<()> {
    dirs::fsync(dir).with_context(|| format!("syncing directory {}", path.display()))
}

/// Settles every file of this entry in the inbox (a crash or an error
/// left them there), oldest first.
pub async fn settle_inbox(
    runtime: &Runtime,
    entry: &mut Entry,
    stopped: &mut watch::Receiver<bool>,
) {
    let Some(dirs) = entry.dirs.clone() else {
        return;
    };
    // A crash between the archive move and its record: the file is in the
    // archive, the store still counts it as taken.
    for (name, _) in runtime.dirmon_taken(entry.view.id) {
        if !dirs::exists_at(&dirs.inbox, &name) && dirs::exists_at(&dirs.archive, &name) {
            let _ = runtime.dirmon_archived(entry.view.id, &name).await;
        }
    }
    let Ok(listing) = std::fs::read_dir(dirs.in_inbox("")) else {
        return;
    };
    let mut names: Vec<String> = listing
        .flatten()
        .filter_map(|i| i.file_name().to_str().map(str::to_string))
        .filter(|n| claimed_by(n) == Some(entry.view.id))
        .collect();
    names.sort_by_key(|n| claim_ms(n));
    for name in names {
        if *stopped.borrow() {
            return;
        }
        settle_one(runtime, entry, &name, stopped).await;
    }
}

/// The entry that claimed inbox file `name` (`<ms>-<entry>-<n>-<name>`).
pub(super) fn claimed_by(name: &str) -> Option<u64> {
    name.split('-').nth(1)?.parse().ok()
}

fn claim_ms(name: &str) -> u64 {
    name.split('-')
        .next()
        .and_then(|ms| ms.parse().ok())
        .unwrap_or(0)
}

/// The name the file arrived with.
fn original_name(name: &str) -> &str {
    name.splitn(4, '-').nth(3).unwrap_or(name)
}

/// Steps 2-4 for inbox file `name`, from wherever a crash or an error left
/// them: the job the store says the file was taken as decides what is left.
async fn settle_one(
    runtime: &Runtime,
    entry: &mut Entry,
    name: &str,
    stopped: &mut watch::Receiver<bool>,
) {
    let Some(dirs) = entry.dirs.clone() else {
        return;
    };
    let done = async {
        let job = match runtime.dirmon_file_job(name) {
            // Never submitted (a crash between the claim and the submit).
            None => return submit(runtime, entry, &dirs, name, stopped, None).await,
            Some(id) => match runtime.job(id).await {
                Ok(job) => job,
                // Taken, and destroyed since: it is never taken again.
                Err(booster_runtime::RuntimeError::NotFound(..)) => return Ok(Settled::Archive),
                Err(e) => return Err(e.into()),
            },
        };
        // A job this one replaced, left by a stop between the two.
        if let Some(old) = job.properties[booster_runtime::DIRMON_PROPERTY]["replaces"].as_u64() {
            drop_replaced(runtime, old).await;
        }
        Ok(match &job {
            j if !j.upload_complete && j.state.is_finished() => {
                let cut = j
                    .failure_reason
                    .as_deref()
                    .is_some_and(booster_runtime::upload_was_cut);
                let ran = j.slices_done + j.slices_failed > 0 || j.records_processed > 0;
                if cut && !ran {
                    // Held from its creation until its upload completes:
                    // none of its records ran. The new job is made first,
                    // then this one destroyed, so the file is never
                    // without a job that will run.
                    return submit(runtime, entry, &dirs, name, stopped, Some(j.id)).await;
                }
                // The file itself could not be read (the failed job says
                // why), or records ran: the file is archived with its job.
                Settled::Archive
            }
            j if !j.upload_complete => anyhow::bail!("job {} is still uploading it", j.id),
            _ => Settled::Archive,
        })
    };
    let result = match done.await {
        Ok(Settled::Archive) => archive(entry, &dirs, name),
        Ok(Settled::Rejected(why)) => reject(entry, &dirs, name, &why).map(|()| {
            entry.tell(format!(
                "{name}: made no job: {why}; moved to {}",
                entry.archive.join(REJECTED).display()
            ))
        }),
        Err(e) => Err(e),
    };
    match result {
        Ok(()) => {
            if !dirs::exists_at(&dirs.inbox, name) {
                if let Err(e) = runtime.dirmon_archived(entry.view.id, name).await {
                    entry.tell(format!(
                        "{name}: archived, but the store did not take the note: {e}"
                    ));
                }
            }
        }
        Err(e) => {
            let inbox = entry.archive.join(INBOX);
            entry.tell(format!(
                "{name}: {e:#}; it stays in {} and is tried again at the next scan",
                inbox.display()
            ));
        }
    }
}

/// Destroys job `old`, which a new job of the same file replaced, if it is
/// still there and still what it was: an upload that was cut, none of its
/// records run.
async fn drop_replaced(runtime: &Runtime, old: JobId) {
    let Ok(job) = runtime.job(old).await else {
        return;
    };
    let cut = job
        .failure_reason
        .as_deref()
        .is_some_and(booster_runtime::upload_was_cut);
    if !job.upload_complete && job.state.is_finished() && cut {
        if let Err(e) = runtime.destroy(old).await {
            eprintln!("booster dirmon: job {old}, replaced, could not be destroyed yet: {e}");
        }
    }
}

/// What is left for a file once its job is settled.
enum Settled {
    /// Move it into the archive.
    Archive,
    /// It makes no job (why): move it to the rejected folder.
    Rejected(String),
}

/// Step 2 and 3: the job, held by the runtime while its input goes in. What the file
/// and the entry's options cannot make a job of is `Rejected`; an error is
/// the store's, and the file is tried again.
async fn submit(
    runtime: &Runtime,
    entry: &Entry,
    dirs: &std::sync::Arc<Dirs>,
    name: &str,
    stopped: &watch::Receiver<bool>,
    replaces: Option<JobId>,
) -> anyhow::Result<Settled> {
    // Read through the inbox this pass opened: a symlink put where the
    // inbox was is never followed.
    let file = dirs.in_inbox(name);
    if !dirs::is_file_at(&dirs.inbox, name) {
        return Ok(Settled::Rejected(
            "not a plain file (a symlink, a FIFO or a device); never read".into(),
        ));
    }
    let source = entry.dir.join(original_name(name));
    let options = entry.view.spec.options.clone();
    // Reading options and the input's head can read files (a fixed-width
    // layout, the CSV header): off the async threads.
    let prepared = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
        let args = parse_options(&options, &file)?;
        let read = read_options(&args)?;
        let input = open_source_with(&file, &read)?;
        let spec = job_spec(&args, &input)?;
        Ok((args, input, spec))
    })
    .await?;
    let (args, input, mut spec) = match prepared {
        Ok(prepared) => prepared,
        Err(why) => return Ok(Settled::Rejected(format!("{why:#}"))),
    };
    spec.properties[props::INPUT] = json!(source.display().to_string());
    spec.properties[booster_runtime::DIRMON_PROPERTY] = json!({
        "entry": entry.view.id,
        "file": name,
        "source": source.display().to_string(),
    });
    if let Some(old) = replaces {
        spec.properties[booster_runtime::DIRMON_PROPERTY]["replaces"] = json!(old);
    }
    if args.description.is_none() {
        spec.description = format!("dirmon {}: {}", entry.view.id, source.display());
        if let Some(old) = replaces {
            spec.description += &format!(" (again: job {old}'s upload was cut)");
        }
    }
    let id = runtime.submit(spec).await?;
    // The new job is the file's now (`taken`); the one it replaces goes.
    // Were this cut short, settling the new job destroys the old one.
    if let Some(old) = replaces {
        drop_replaced(runtime, old).await;
    }
    // From here any error drops the uploader, which marks the upload cut,
    // so the next pass makes the job again. Until the upload completes,
    // the runtime leases nothing of a dirmon job (`dirmon::holds`).
    let mut uploader = runtime.upload(id).await?;
    let mut stop = stopped.clone();
    let stop = async move {
        let _ = stop.wait_for(|s| *s).await;
    };
    match pump(&mut uploader, input.records, stop, || {}).await {
        Ok(()) => {
            uploader.finish().await?;
        }
        Err(PumpError::Stopped) => {
            // Dropped unfinished: the runtime marks the upload cut, and the
            // next start makes the job again (none of its records ran).
            drop(uploader);
            anyhow::bail!("the watcher stopped during the upload of job {id}");
        }
        Err(PumpError::Store(e)) => return Err(e.into()),
        Err(e) => {
            // The file cannot be read on: the job fails with why, and the
            // file is archived (submitting it again would fail again).
            uploader
                .fail(format!("reading the input failed: {e}"))
                .await?;
            eprintln!(
                "booster dirmon {}: {} is job {id}, failed: reading it failed: {e}",
                entry.view.id,
                source.display()
            );
            return Ok(Settled::Archive);
        }
    }
    eprintln!(
        "booster dirmon {}: {} is job {id}",
        entry.view.id,
        source.display()
    );
    Ok(Settled::Archive)
}

/// Step 4: out of the inbox into the archive, durably. Done already when
/// the file is there and not in the inbox.
fn archive(entry: &Entry, dirs: &Dirs, name: &str) -> anyhow::Result<()> {
    let inbox = entry.archive.join(INBOX);
    if !dirs::exists_at(&dirs.inbox, name) && dirs::exists_at(&dirs.archive, name) {
        return Ok(());
    }
    dirs::rename_new(&dirs.inbox, name, &dirs.archive, name).with_context(|| {
        format!(
            "moving {} to {}",
            inbox.join(name).display(),
            entry.archive.join(name).display()
        )
    })?;
    fsync_dir(&dirs.inbox, &inbox)?;
    fsync_dir(&dirs.archive, &entry.archive)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn add_words_split_the_entry_options_from_the_job_options() {
        let w = split_add_words(&words(
            "--pattern /in/*.csv --kind copy --format csv --archive=/done --priority 5 --settle 250ms",
        ))
        .unwrap();
        assert_eq!(w.pattern, "/in/*.csv");
        assert_eq!(w.archive, "/done");
        assert_eq!(w.settle_ms, 250);
        assert_eq!(w.options, words("--kind copy --format csv --priority 5"));
    }

    #[test]
    fn bad_job_options_are_refused_when_the_entry_is_added() {
        for (line, says) in [
            ("--pattern /in/*.csv --archive /done", "--kind"),
            (
                "--pattern /in/*.csv --archive /done --kind frobnicate",
                "no job kind",
            ),
            (
                "--pattern /in/*.csv --archive /done --kind copy --input x",
                "cannot hold --input",
            ),
            (
                "--pattern /in/*.csv --archive /done --kind copy --priority 500",
                "500",
            ),
            ("--archive /done --kind copy", "--pattern"),
            ("--pattern /in/*.csv --kind copy", "--archive"),
            (
                "--pattern /in/*.csv --archive /d --kind copy --settle soon",
                "5s",
            ),
        ] {
            let e = format!("{:#}", split_add_words(&words(line)).unwrap_err());
            assert!(e.contains(says), "{line}: {e}");
        }
    }

    #[test]
    fn a_claimed_name_keeps_its_time_entry_and_original_name() {
        let name = "1795932425572-3-17-orders-2026-11-29.csv";
        assert_eq!(claim_ms(name), 1_795_932_425_572);
        assert_eq!(claimed_by(name), Some(3));
        assert_eq!(original_name(name), "orders-2026-11-29.csv");
    }
}
