//! Directory monitor entries (issue 14): the durable half of dirmon. An
//! entry says which files to take (`pattern`), where to move them
//! (`archive`), and the options of the job each file becomes; the watcher
//! that takes files (`booster_tools::dirmon`) reads the entries from here.
//! ARCHITECTURE.md ("Dirmon") has the protocol; in short:
//!
//! - An entry is its own durable record (`Meta::Dirmon`), applied by
//!   `State::apply` into `Book::dirmons`, and written whole into every
//!   compaction snapshot.
//! - The runtime never reads `options`: they are the watcher's (argument
//!   words, parsed with the same parser as `booster submit`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::meta::{DirmonChange, Meta};
use crate::shared::write_one;
use crate::state::State;
use crate::{JobId, Runtime, RuntimeError};

/// A dirmon entry's id (`Runtime::add_dirmon`); never reused.
pub type DirmonId = u64;

/// The default time a file must stay unchanged before it is taken.
pub const DEFAULT_SETTLE_MS: u64 = 5_000;

/// Whether a failed upload's reason says it was cut (its process stopped,
/// or its uploader was dropped), not that its input was bad: only such an
/// upload may be made again from the same file.
pub fn upload_was_cut(reason: &str) -> bool {
    reason == crate::lost::UPLOAD_CUT || reason == crate::upload::UPLOADER_DROPPED
}

/// The job property a dirmon job carries: `{"entry": id, "file": NAME,
/// "source": path}`, NAME its file's unique name in the entry's inbox and
/// archive. The runtime reads `file` when the job is created, to keep the
/// file's job known after the job itself is destroyed (`Dirmons::taken`).
pub const PROPERTY: &str = "dirmon";

/// Whether `job` is a dirmon job whose file is not wholly in: nothing of it
/// is leased (`Job::ready_slot`) until its upload completes, so a job whose
/// upload a crash cut has run none of its records and may be made again,
/// and one whose upload failed never runs part of its file. The hold is
/// the scheduler's, from the job's own record: no pause to undo, no window
/// where the job could start.
pub(crate) fn holds(job: &crate::table::Job) -> bool {
    job.properties.get(PROPERTY).is_some()
        && job
            .sliced()
            .is_some_and(|s| s.upload != crate::table::UploadState::Complete)
}

/// What a directory monitor takes and what it makes of each file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirmonSpec {
    /// `DIR/GLOB`: a literal directory, then a glob of file names
    /// (`/data/in/*.csv`). No wildcard in the directory part.
    pub pattern: String,
    /// Where taken files are moved: a directory on the same file system as
    /// the pattern's directory.
    pub archive: String,
    /// How long a file's size and modification time must stay unchanged
    /// before it is taken (ms).
    pub settle_ms: u64,
    /// The job options as argument words (`--kind`, `--format`, ...), read
    /// by the watcher; the runtime stores them as they are.
    pub options: Vec<String>,
}

impl DirmonSpec {
    /// The pattern's directory and file-name glob, or why the pattern is
    /// not one this runtime can watch.
    pub fn split_pattern(&self) -> Result<(&str, &str), String> {
        let pattern = self.pattern.as_str();
        let (dir, glob) = pattern.rsplit_once('/').ok_or_else(|| {
            format!("dirmon pattern {pattern:?} names no directory; give DIR/GLOB, such as /data/in/*.csv")
        })?;
        if dir.is_empty() || glob.is_empty() {
            return Err(format!(
                "dirmon pattern {pattern:?} needs a directory and a file-name glob, such as /data/in/*.csv"
            ));
        }
        if dir.contains(['*', '?', '[', '{']) {
            return Err(format!(
                "dirmon pattern {pattern:?} has a wildcard in its directory part {dir:?}; only the file name may have one"
            ));
        }
        Ok((dir, glob))
    }

    /// The checks a spec must pass, for `add_dirmon` and for a `define`
    /// record read from the log.
    pub(crate) fn check(&self) -> Result<(), String> {
        self.split_pattern()?;
        if self.archive.trim().is_empty() {
            return Err("a dirmon entry needs an archive directory".into());
        }
        if self.options.is_empty() {
            return Err("a dirmon entry needs job options (at least --kind)".into());
        }
        Ok(())
    }
}

/// A dirmon entry as it stands (`Runtime::dirmons`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirmonView {
    pub id: DirmonId,
    pub spec: DirmonSpec,
    pub paused: bool,
    /// When the entry was added (ms since the epoch).
    pub defined_ms: u64,
}

/// The entries and the next id to hand out (`Book::dirmons`), and the
/// files taken but not archived yet.
#[derive(Clone, Debug)]
pub struct Dirmons {
    pub entries: BTreeMap<DirmonId, DirmonView>,
    pub next: DirmonId,
    /// Inbox file name -> (entry, job): set by the `created` record of the
    /// file's job, cleared by `Archived`. It outlives the job (destroyed
    /// while its file sat in the inbox), so the watcher never takes a
    /// file twice because its job is gone; bounded by the files in flight.
    pub taken: BTreeMap<String, (DirmonId, JobId)>,
}

impl Default for Dirmons {
    fn default() -> Dirmons {
        Dirmons {
            entries: BTreeMap::new(),
            next: 1,
            taken: BTreeMap::new(),
        }
    }
}

impl Dirmons {
    /// Notes the file a dirmon job was made of (`created`, live and on replay).
    pub(crate) fn note_created(&mut self, spec: &crate::JobSpec, id: JobId) {
        let Some(d) = spec.properties.get(PROPERTY) else {
            return;
        };
        if let Some(file) = d.get("file").and_then(|f| f.as_str()) {
            let entry = d.get("entry").and_then(|e| e.as_u64()).unwrap_or(0);
            self.taken.insert(file.to_string(), (entry, id));
        }
    }

    /// The records a compaction snapshot writes: each entry whole, with its
    /// paused flag and its own definition time.
    pub(crate) fn snapshot_records(&self) -> Vec<Meta> {
        self.entries
            .values()
            .map(|e| Meta::Dirmon {
                dirmon: e.id,
                at_ms: e.defined_ms,
                change: DirmonChange::Define {
                    spec: Box::new(e.spec.clone()),
                    paused: e.paused,
                },
            })
            .chain(self.taken.iter().map(|(file, &(entry, job))| Meta::Dirmon {
                dirmon: entry,
                at_ms: 0,
                change: DirmonChange::Taken {
                    file: file.clone(),
                    job,
                },
            }))
            .collect()
    }
}

impl State {
    /// Applies a `Meta::Dirmon` record.
    pub(crate) fn apply_dirmon(
        &mut self,
        id: DirmonId,
        at_ms: u64,
        change: &DirmonChange,
    ) -> Result<(), RuntimeError> {
        let dirmons = &mut self.book.dirmons;
        match change {
            DirmonChange::Define { spec, paused } => {
                let corrupt = |e: String| RuntimeError::Corrupt(format!("dirmon {id}: {e}"));
                spec.check().map_err(corrupt)?;
                if dirmons.entries.contains_key(&id) || id == DirmonId::MAX {
                    return Err(corrupt("defined twice".into()));
                }
                dirmons.entries.insert(
                    id,
                    DirmonView {
                        id,
                        spec: (**spec).clone(),
                        paused: *paused,
                        defined_ms: at_ms,
                    },
                );
                dirmons.next = dirmons.next.max(id + 1);
            }
            DirmonChange::Pause | DirmonChange::Resume => {
                let entry = dirmons.entries.get_mut(&id).ok_or_else(|| no_entry(id))?;
                entry.paused = matches!(change, DirmonChange::Pause);
            }
            DirmonChange::Remove => {
                dirmons.entries.remove(&id).ok_or_else(|| no_entry(id))?;
            }
            // Files outlive their entry: neither needs it.
            DirmonChange::Taken { file, job } => {
                dirmons.taken.insert(file.clone(), (id, *job));
            }
            DirmonChange::Archived { file } => {
                dirmons.taken.remove(file);
            }
        }
        Ok(())
    }
}

fn no_entry(id: DirmonId) -> RuntimeError {
    RuntimeError::EntryNotFound(format!(
        "no dirmon entry {id}; `booster dirmon list` shows them"
    ))
}

impl Runtime {
    /// Adds a directory monitor entry. Durable when it returns; the
    /// process that runs the watcher (`booster serve` or `booster work`
    /// with `--dirmon-allow`) starts taking files at its next scan.
    pub async fn add_dirmon(&self, mut spec: DirmonSpec) -> Result<DirmonId, RuntimeError> {
        spec.pattern = spec.pattern.trim().to_string();
        spec.check().map_err(RuntimeError::Invalid)?;
        let id = {
            let mut st = self.shared().state.lock();
            let id = st.book.dirmons.next;
            st.book.dirmons.next += 1;
            id
        };
        let m = Meta::Dirmon {
            dirmon: id,
            at_ms: self.shared().clock.now_ms(),
            change: DirmonChange::Define {
                spec: Box::new(spec),
                paused: false,
            },
        };
        write_one(self.shared(), self.store(), m).await?;
        self.shared().changed();
        Ok(id)
    }

    /// Checks a job spec as `submit` would (priority, slice size against
    /// this runtime's limits, categories, singleton key), writing nothing:
    /// for options stored now and made into jobs later (a dirmon entry's).
    pub fn check_spec(&self, spec: &crate::JobSpec) -> Result<(), RuntimeError> {
        crate::runtime::validate(spec, &self.shared().limits)
    }

    /// Every dirmon entry, by id.
    pub fn dirmons(&self) -> Vec<DirmonView> {
        let st = self.shared().state.lock();
        st.book.dirmons.entries.values().cloned().collect()
    }

    /// Stops taking files for entry `id` (a file already taken goes on).
    pub async fn pause_dirmon(&self, id: DirmonId) -> Result<(), RuntimeError> {
        self.change_dirmon(id, DirmonChange::Pause).await
    }

    /// Takes files for entry `id` again.
    pub async fn resume_dirmon(&self, id: DirmonId) -> Result<(), RuntimeError> {
        self.change_dirmon(id, DirmonChange::Resume).await
    }

    /// Removes entry `id` (a file already taken goes on as its job).
    pub async fn remove_dirmon(&self, id: DirmonId) -> Result<(), RuntimeError> {
        self.change_dirmon(id, DirmonChange::Remove).await
    }

    /// The job inbox file `file` was taken as, if it was (even when that
    /// job was destroyed since), until the file is archived.
    pub fn dirmon_file_job(&self, file: &str) -> Option<JobId> {
        let st = self.shared().state.lock();
        st.book.dirmons.taken.get(file).map(|&(_, job)| job)
    }

    /// The files of entry `id` taken and not archived yet, with their jobs.
    pub fn dirmon_taken(&self, id: DirmonId) -> Vec<(String, JobId)> {
        let st = self.shared().state.lock();
        st.book
            .dirmons
            .taken
            .iter()
            .filter(|(_, &(entry, _))| entry == id)
            .map(|(file, &(_, job))| (file.clone(), job))
            .collect()
    }

    /// Records that inbox file `file` of entry `id` is in the archive.
    pub async fn dirmon_archived(&self, id: DirmonId, file: &str) -> Result<(), RuntimeError> {
        let m = Meta::Dirmon {
            dirmon: id,
            at_ms: self.shared().clock.now_ms(),
            change: DirmonChange::Archived {
                file: file.to_string(),
            },
        };
        write_one(self.shared(), self.store(), m).await
    }

    async fn change_dirmon(&self, id: DirmonId, change: DirmonChange) -> Result<(), RuntimeError> {
        if !self
            .shared()
            .state
            .lock()
            .book
            .dirmons
            .entries
            .contains_key(&id)
        {
            return Err(no_entry(id));
        }
        let m = Meta::Dirmon {
            dirmon: id,
            at_ms: self.shared().clock.now_ms(),
            change,
        };
        write_one(self.shared(), self.store(), m).await?;
        self.shared().changed();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(pattern: &str) -> DirmonSpec {
        DirmonSpec {
            pattern: pattern.into(),
            archive: "/tmp/archive".into(),
            settle_ms: DEFAULT_SETTLE_MS,
            options: vec!["--kind".into(), "copy".into()],
        }
    }

    #[test]
    fn a_pattern_is_a_literal_directory_and_a_file_glob() {
        assert_eq!(
            spec("/data/in/*.csv").split_pattern().unwrap(),
            ("/data/in", "*.csv")
        );
        for (bad, says) in [
            ("*.csv", "names no directory"),
            ("/data/*/x.csv", "wildcard in its directory"),
            ("/data/in/", "needs a directory and a file-name glob"),
        ] {
            let e = spec(bad).check().unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    #[test]
    fn an_entry_without_options_or_archive_is_refused() {
        let mut s = spec("/in/*.csv");
        s.options.clear();
        assert!(s.check().unwrap_err().contains("--kind"));
        let mut s = spec("/in/*.csv");
        s.archive = " ".into();
        assert!(s.check().unwrap_err().contains("archive"));
    }

    #[test]
    fn define_pause_remove_apply_and_a_second_define_is_corrupt() {
        let mut st = State::new(crate::state::Book::new(1, 1_000, 100));
        let define = DirmonChange::Define {
            spec: Box::new(spec("/in/*.csv")),
            paused: false,
        };
        st.apply_dirmon(3, 7, &define).unwrap();
        assert_eq!(st.book.dirmons.next, 4);
        st.apply_dirmon(3, 8, &DirmonChange::Pause).unwrap();
        assert!(st.book.dirmons.entries[&3].paused);
        assert!(matches!(
            st.apply_dirmon(3, 9, &define),
            Err(RuntimeError::Corrupt(_))
        ));
        let records = st.book.dirmons.snapshot_records();
        assert!(matches!(
            &records[..],
            [Meta::Dirmon {
                dirmon: 3,
                at_ms: 7,
                change: DirmonChange::Define { paused: true, .. }
            }]
        ));
        st.apply_dirmon(3, 10, &DirmonChange::Remove).unwrap();
        assert!(st.book.dirmons.entries.is_empty());
        assert!(st.apply_dirmon(3, 11, &DirmonChange::Resume).is_err());
    }

    /// The file a job was made of stays known after the job is destroyed,
    /// through compaction snapshots, until it is archived.
    #[test]
    fn a_taken_file_is_known_until_archived_even_through_a_snapshot() {
        let mut st = State::new(crate::state::Book::new(1, 1_000, 100));
        let mut spec = crate::JobSpec::sliced("copy");
        spec.properties = serde_json::json!({ PROPERTY: { "entry": 2, "file": "5-2-0-a.csv" } });
        st.apply(&Meta::Created {
            first_id: 1,
            at_ms: 5,
            specs: vec![spec],
        })
        .unwrap();
        assert_eq!(st.book.dirmons.taken["5-2-0-a.csv"], (2, 1));
        let mut copy = State::new(crate::state::Book::new(1, 1_000, 100));
        for m in st.book.dirmons.snapshot_records() {
            copy.apply(&m).unwrap();
        }
        assert_eq!(copy.book.dirmons.taken, st.book.dirmons.taken);
        let archived = DirmonChange::Archived {
            file: "5-2-0-a.csv".into(),
        };
        copy.apply_dirmon(2, 9, &archived).unwrap();
        assert!(copy.book.dirmons.taken.is_empty());
    }

    #[test]
    fn only_a_cut_upload_may_be_made_again() {
        assert!(upload_was_cut(&crate::lost::upload_reason(&[])));
        assert!(upload_was_cut(crate::upload::UPLOADER_DROPPED));
        assert!(!upload_was_cut(
            "upload interrupted: reading the input failed: bad gzip"
        ));
    }
}
