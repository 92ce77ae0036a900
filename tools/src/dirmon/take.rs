//! Taking files: scan, claim, submit, upload, archive, and settling what a
//! crash or an error left in the inbox. See the module above for the steps.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use booster_runtime::{JobFilter, JobId, JobState, JobStatus, Runtime};
use clap::Parser;
use serde_json::json;
use tokio::sync::watch;

use super::Entry;
use crate::cli::JobInputArgs;
use crate::commands::run::{job_spec, read_options};
use crate::formats::open_source_with;
use crate::formats::props;
use crate::kinds;
use crate::pump::{pump, PumpError};

/// The inbox under an archive: files claimed, not yet archived.
pub const INBOX: &str = ".booster-inbox";

/// The reason a watcher that stops gives the upload it leaves: the same
/// words the runtime gives an upload a crash cut, so the next pass knows
/// it may submit the file again.
const INTERRUPTED: &str = "upload interrupted";

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
    for word in options {
        let flag = word.split('=').next().unwrap_or_default();
        if ["--input", "--args"].contains(&flag) {
            anyhow::bail!(
                "dirmon job options cannot hold {flag}: each file the entry takes is the job's input"
            );
        }
    }
    let mut words = options.to_vec();
    words.push("--input".into());
    words.push(input.display().to_string());
    let parsed = Words::try_parse_from(&words).map_err(|e| {
        anyhow::anyhow!(
            "dirmon job options {}: {}",
            options.join(" "),
            e.render().to_string().trim_end()
        )
    })?;
    let job = parsed.job;
    if !kinds::SLICED_KINDS.contains(&job.kind.as_str()) {
        anyhow::bail!(
            "no job kind {:?} here; dirmon makes sliced jobs of {}",
            job.kind,
            kinds::SLICED_KINDS.join(", ")
        );
    }
    Ok(job)
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

/// Splits `dirmon add`'s words into the entry's (`--pattern`, `--archive`,
/// `--settle`) and the job options, checks the job options, and makes the
/// paths absolute (the watcher may run elsewhere).
pub fn split_add_words(words: &[String]) -> anyhow::Result<AddWords> {
    let mut pattern = None;
    let mut archive = None;
    let mut settle_ms = booster_runtime::DIRMON_DEFAULT_SETTLE_MS;
    let mut options = Vec::new();
    let mut i = 0;
    while i < words.len() {
        let word = &words[i];
        let (flag, inline) = match word.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f, Some(v.to_string())),
            _ => (word.as_str(), None),
        };
        if !["--pattern", "--archive", "--settle"].contains(&flag) {
            options.push(word.clone());
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
        match flag {
            "--pattern" => pattern = Some(value),
            "--archive" => archive = Some(value),
            _ => settle_ms = parse_settle(&value).map_err(crate::exit::usage)?,
        }
        i += 1;
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
    let bad = || format!("--settle {text:?}: give a time such as 5s, 500ms or 2m");
    let (number, unit_ms) = if let Some(n) = text.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1_000.0)
    } else if let Some(n) = text.strip_suffix('m') {
        (n, 60_000.0)
    } else {
        (text, 1_000.0)
    };
    let n: f64 = number.trim().parse().map_err(|_| bad())?;
    if !n.is_finite() || n < 0.0 {
        return Err(bad());
    }
    Ok((n * unit_ms).round() as u64)
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
    let listing = match std::fs::read_dir(&entry.dir) {
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
        let Ok(meta) = std::fs::symlink_metadata(item.path()) else {
            continue;
        };
        if !meta.is_file() {
            continue;
        }
        let stamp = (meta.len(), meta.modified().unwrap_or(UNIX_EPOCH));
        let path = item.path();
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
        entry.seen.remove(&path);
        match claim(entry, &path) {
            Ok(name) => settle_one(runtime, entry, &name, stopped).await,
            Err(e) => entry.tell(format!("{}: not taken: {e}", path.display())),
        }
    }
    next
}

/// Step 1: moves the file into the inbox under a unique name, durably.
fn claim(entry: &Entry, path: &Path) -> anyhow::Result<String> {
    let original = path
        .file_name()
        .and_then(|n| n.to_str())
        .context("a file name")?;
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis();
    let n = CLAIMS.fetch_add(1, Ordering::Relaxed);
    let name = format!("{ms}-{}-{n}-{original}", entry.view.id);
    let inbox = entry.archive.join(INBOX);
    if !inbox.is_dir() {
        std::fs::create_dir(&inbox).with_context(|| format!("creating {}", inbox.display()))?;
        fsync_dir(&entry.archive)?;
    }
    std::fs::rename(path, inbox.join(&name)).map_err(|e| {
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
    fsync_dir(&entry.dir)?;
    fsync_dir(&inbox)?;
    Ok(name)
}

fn fsync_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("syncing directory {}", dir.display()))
}

/// Settles every file of this entry in the inbox (a crash or an error
/// left them there), oldest first.
pub async fn settle_inbox(
    runtime: &Runtime,
    entry: &mut Entry,
    stopped: &mut watch::Receiver<bool>,
) {
    let inbox = entry.archive.join(INBOX);
    let Ok(listing) = std::fs::read_dir(&inbox) else {
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
fn claimed_by(name: &str) -> Option<u64> {
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
/// them: what the store holds of its job decides what is left to do.
async fn settle_one(
    runtime: &Runtime,
    entry: &mut Entry,
    name: &str,
    stopped: &mut watch::Receiver<bool>,
) {
    let done = async {
        match find_job(runtime, name).await {
            None => {
                submit(runtime, entry, name, stopped, None).await?;
            }
            Some(job) if !job.upload_complete && job.state.is_finished() => {
                let cut = job
                    .failure_reason
                    .as_deref()
                    .is_some_and(|r| r.starts_with(INTERRUPTED));
                if cut {
                    // Paused from its creation: none of its records ran.
                    runtime.destroy(job.id).await?;
                    submit(runtime, entry, name, stopped, Some(job.id)).await?;
                }
                // Otherwise the file itself could not be read: the failed
                // job says why, and the file is archived with it.
            }
            Some(job) if !job.upload_complete => {
                anyhow::bail!("job {} is still uploading it", job.id);
            }
            Some(job) if job.state == JobState::Paused => runtime.resume(job.id).await?,
            Some(_) => {}
        }
        archive(entry, name)
    };
    if let Err(e) = done.await {
        let inbox = entry.archive.join(INBOX);
        entry.tell(format!(
            "{name}: {e:#}; it stays in {} and is tried again at the next scan",
            inbox.display()
        ));
    }
}

/// The newest job made of inbox file `name`: jobs newest first, down to
/// those created well before the file was claimed.
async fn find_job(runtime: &Runtime, name: &str) -> Option<JobStatus> {
    let claimed = UNIX_EPOCH + Duration::from_millis(claim_ms(name));
    let horizon = claimed
        .checked_sub(Duration::from_secs(60))
        .unwrap_or(UNIX_EPOCH);
    let mut before: Option<JobId> = None;
    loop {
        let page = runtime.jobs_page(JobFilter::default(), before, 256).await;
        for job in page.jobs.iter().rev() {
            let file = job
                .properties
                .get("dirmon")
                .and_then(|d| d.get("file"))
                .and_then(|f| f.as_str());
            if file == Some(name) {
                return Some(job.clone());
            }
            if job.created_at < horizon {
                return None;
            }
        }
        before = Some(page.next_before?);
    }
}

/// Step 2 and 3: the job, paused while its input goes in.
async fn submit(
    runtime: &Runtime,
    entry: &Entry,
    name: &str,
    stopped: &watch::Receiver<bool>,
    replaces: Option<JobId>,
) -> anyhow::Result<JobId> {
    let file = entry.archive.join(INBOX).join(name);
    let source = entry.dir.join(original_name(name));
    let args = parse_options(&entry.view.spec.options, &file)?;
    let options = read_options(&args)?;
    let path = file.clone();
    let input = tokio::task::spawn_blocking(move || open_source_with(&path, &options)).await??;
    let mut spec = job_spec(&args, &input)?;
    spec.properties[props::INPUT] = json!(source.display().to_string());
    spec.properties["dirmon"] = json!({
        "entry": entry.view.id,
        "file": name,
        "source": source.display().to_string(),
    });
    if args.description.is_none() {
        spec.description = format!("dirmon {}: {}", entry.view.id, source.display());
        if let Some(old) = replaces {
            spec.description += &format!(" (again: job {old}'s upload was cut)");
        }
    }
    let id = runtime.submit(spec).await?;
    runtime.pause(id).await?;
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
            uploader
                .fail(format!("{INTERRUPTED}: the dirmon watcher stopped"))
                .await?;
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
            return Ok(id);
        }
    }
    runtime.resume(id).await?;
    eprintln!(
        "booster dirmon {}: {} is job {id}",
        entry.view.id,
        source.display()
    );
    Ok(id)
}

/// Step 4: out of the inbox into the archive, durably. Done already when
/// the file is there and not in the inbox.
fn archive(entry: &Entry, name: &str) -> anyhow::Result<()> {
    let inbox = entry.archive.join(INBOX);
    let from = inbox.join(name);
    let to = entry.archive.join(name);
    if !from.exists() && to.exists() {
        return Ok(());
    }
    std::fs::rename(&from, &to)
        .with_context(|| format!("moving {} to {}", from.display(), to.display()))?;
    fsync_dir(&inbox)?;
    fsync_dir(&entry.archive)
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
