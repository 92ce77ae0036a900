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
use crate::{Runtime, RuntimeError};

/// A dirmon entry's id (`Runtime::add_dirmon`); never reused.
pub type DirmonId = u64;

/// The default time a file must stay unchanged before it is taken.
pub const DEFAULT_SETTLE_MS: u64 = 5_000;

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

/// The entries and the next id to hand out (`Book::dirmons`).
#[derive(Clone, Debug)]
pub struct Dirmons {
    pub entries: BTreeMap<DirmonId, DirmonView>,
    pub next: DirmonId,
}

impl Default for Dirmons {
    fn default() -> Dirmons {
        Dirmons {
            entries: BTreeMap::new(),
            next: 1,
        }
    }
}

impl Dirmons {
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
        }
        Ok(())
    }
}

fn no_entry(id: DirmonId) -> RuntimeError {
    RuntimeError::Invalid(format!(
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
}
