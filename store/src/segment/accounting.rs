//! Accounting for every segment file (G11): which files must exist, which
//! recovery may delete and why, and which are corruption or tampering.
//! Recovery acts on the result (and fails on the first issue); `verify`
//! reports every issue. Nothing here touches the disk.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use super::header::{SegmentHeader, SEGMENT_HEADER_LEN};
use super::segment_file_name;
use crate::manifest::{Manifest, MANIFEST_FILE_NAME};
use crate::{FormatError, MasterKey};

/// What is known about one segment file before anything is read past its header.
pub(crate) struct FileFacts {
    pub id: u64,
    pub path: PathBuf,
    pub len: u64,
    pub header: Result<SegmentHeader, FormatError>,
}

/// Why recovery deletes a segment file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Removal {
    /// The newest segment, created but never listed (or, in a store from
    /// before the manifest, whose header never became durable): it holds
    /// no frame.
    Unfinished,
    /// Replaced by a compaction (its unlink did not finish).
    Replaced,
    /// A member of a compaction group that was never published.
    IncompleteGroup,
}

/// A file that cannot be accounted for, or a missing one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Issue {
    pub segment_id: u64,
    pub path: PathBuf,
    pub offset: u64,
    pub what: String,
    /// A bad segment header (verify reports those per segment anyway).
    pub header: bool,
    /// A listed segment file is absent: recovery opens without it
    /// (degraded: whatever it held is an unknown loss), never deletes.
    pub missing: bool,
}

/// The manifest as recovery or verify found it.
pub(crate) struct ManifestView<'a> {
    pub manifest: &'a Manifest,
    /// Its MAC checked out under the key (false without a key or a MAC).
    pub authenticated: bool,
}

#[derive(Default)]
pub(crate) struct Accounting {
    pub removals: BTreeMap<u64, Removal>,
    pub issues: Vec<Issue>,
}

impl Accounting {
    fn issue(&mut self, id: u64, path: &Path, offset: u64, what: impl Into<String>) {
        self.issues.push(Issue {
            segment_id: id,
            path: path.to_path_buf(),
            offset,
            what: what.into(),
            header: false,
            missing: false,
        });
    }

    fn header_issue(&mut self, f: &FileFacts, offset: u64, what: impl Into<String>) {
        self.issue(f.id, &f.path, offset, what);
        if let Some(last) = self.issues.last_mut() {
            last.header = true;
        }
    }
}

/// Accounts for every segment file of `dir`. `key` is the key the store is
/// opened (or verified) with.
pub(crate) fn account(
    dir: &Path,
    files: &[&FileFacts],
    manifest: Option<ManifestView<'_>>,
    key: Option<&MasterKey>,
) -> Accounting {
    let mut acc = Accounting::default();
    match &manifest {
        Some(view) => account_listed(dir, files, view.manifest, &mut acc),
        None => account_legacy(dir, files, &mut acc),
    }
    if key.is_some() {
        check_plaintext(dir, files, manifest.as_ref(), &mut acc);
    }
    acc
}

/// A segment's header must decode and match its file name.
fn check_header(f: &FileFacts, acc: &mut Accounting) {
    match &f.header {
        Err(e) => acc.header_issue(f, 0, e.0.clone()),
        Ok(h) if h.segment_id != f.id => {
            acc.header_issue(f, 16, "segment id does not match the file name")
        }
        Ok(_) => {}
    }
}

/// With a manifest: every listed file must exist; an unlisted one is
/// deleted only when the protocol explains it (see ARCHITECTURE.md).
fn account_listed(dir: &Path, files: &[&FileFacts], m: &Manifest, acc: &mut Accounting) {
    let present: BTreeSet<u64> = files.iter().map(|f| f.id).collect();
    for &id in m.segments.iter().filter(|id| !present.contains(id)) {
        acc.issue(
            id,
            &dir.join(segment_file_name(id)),
            0,
            "segment file is missing (MANIFEST lists it); restore it from a backup, or the data it held is lost",
        );
        if let Some(last) = acc.issues.last_mut() {
            last.missing = true;
        }
    }
    let newest_listed = m.segments.last().copied().unwrap_or(0);
    for f in files {
        if m.lists(f.id) {
            check_header(f, acc);
            continue;
        }
        let group = f.header.as_ref().ok().map(|h| h.group.group_id);
        if f.id < m.compacted_below {
            acc.removals.insert(f.id, Removal::Replaced);
        } else if f.id > newest_listed && group.is_some_and(|g| g != 0) {
            acc.removals.insert(f.id, Removal::IncompleteGroup);
        } else if f.id > newest_listed && f.len <= SEGMENT_HEADER_LEN as u64 {
            acc.removals.insert(f.id, Removal::Unfinished);
        } else {
            acc.issue(
                f.id,
                &f.path,
                0,
                "segment file is not listed in MANIFEST and no crash explains it; move it out of the data directory",
            );
        }
    }
}

/// A store from before the manifest: the compaction groups in the headers
/// decide, as they did then. A segment written with a manifest means the
/// manifest was lost.
fn account_legacy(dir: &Path, files: &[&FileFacts], acc: &mut Accounting) {
    if let Some(f) = files
        .iter()
        .find(|f| f.header.as_ref().is_ok_and(|h| h.manifested))
    {
        acc.issue(
            f.id,
            &dir.join(MANIFEST_FILE_NAME),
            0,
            format!(
                "MANIFEST is missing, yet segment {} was written by a store that keeps one; restore MANIFEST from a backup",
                f.id
            ),
        );
        return;
    }
    let unfinished = files
        .last()
        .filter(|last| last.header.is_err() && last.len <= SEGMENT_HEADER_LEN as u64)
        .map(|last| last.id);
    // Every other header must be sound before any file is deleted on the
    // strength of the others (a rotted compaction member must not make its
    // complete group look incomplete).
    for f in files.iter().filter(|f| Some(f.id) != unfinished) {
        check_header(f, acc);
    }
    if !acc.issues.is_empty() {
        return;
    }
    if let Some(id) = unfinished {
        acc.removals.insert(id, Removal::Unfinished);
    }
    resolve_compaction_groups(files, acc);
}

/// A complete compaction group replaces every older segment below its bound;
/// an incomplete one (a crash before all members were published) is removed,
/// but only while the segments it was to replace are still there: a group
/// missing a member after those are gone lost a file, which is corruption.
fn resolve_compaction_groups(files: &[&FileFacts], acc: &mut Accounting) {
    let mut groups: BTreeMap<u64, Vec<&SegmentHeader>> = BTreeMap::new();
    for f in files {
        if let Ok(h) = &f.header {
            if h.group.group_id != 0 {
                groups.entry(h.group.group_id).or_default().push(h);
            }
        }
    }
    let mut incomplete = Vec::new();
    for members in groups.values() {
        let first = members[0].group;
        let indices: BTreeSet<u32> = members.iter().map(|h| h.group.member_index).collect();
        let consistent = members.iter().all(|h| {
            h.group.member_count == first.member_count
                && h.group.replaces_below == first.replaces_below
        });
        if !(consistent && indices.len() == first.member_count as usize) {
            incomplete.push(members);
            continue;
        }
        let own: BTreeSet<u64> = members.iter().map(|h| h.segment_id).collect();
        for f in files {
            if f.id < first.replaces_below && !own.contains(&f.id) {
                acc.removals.entry(f.id).or_insert(Removal::Replaced);
            }
        }
    }
    for members in incomplete {
        if members
            .iter()
            .all(|h| acc.removals.get(&h.segment_id) == Some(&Removal::Replaced))
        {
            continue; // a later complete group replaces them anyway
        }
        let bound = members[0].group.replaces_below;
        let own: BTreeSet<u64> = members.iter().map(|h| h.segment_id).collect();
        let old_still_there = files
            .iter()
            .any(|f| f.id < bound && !own.contains(&f.id) && !acc.removals.contains_key(&f.id));
        if !old_still_there {
            let h = members[0];
            let path = files
                .iter()
                .find(|f| f.id == h.segment_id)
                .map(|f| f.path.clone())
                .unwrap_or_else(|| PathBuf::from(segment_file_name(h.segment_id)));
            acc.issue(
                h.segment_id,
                &path,
                64,
                format!(
                    "compaction group {:#x} has {} of {} members and the segments it replaced are gone; restore the missing segment files",
                    h.group.group_id,
                    members.len(),
                    h.group.member_count
                ),
            );
            return;
        }
        for h in members {
            acc.removals.insert(h.segment_id, Removal::IncompleteGroup);
        }
    }
}

/// With a key, a plaintext segment is accepted only when the authenticated
/// manifest lists it as older than the key. Before the key's first use (no
/// manifest, or one without a MAC) every segment must be plaintext; they are
/// then recorded as allowed.
fn check_plaintext(
    dir: &Path,
    files: &[&FileFacts],
    manifest: Option<&ManifestView<'_>>,
    acc: &mut Accounting,
) {
    let kept = files.iter().filter(|f| !acc.removals.contains_key(&f.id));
    let headers: Vec<(&FileFacts, &SegmentHeader)> = kept
        .filter_map(|f| f.header.as_ref().ok().map(|h| (*f, h)))
        .collect();
    let mut found = Vec::new();
    match manifest {
        Some(view) if view.authenticated => {
            for (f, h) in &headers {
                if !h.encrypted && !view.manifest.allows_plaintext(f.id) {
                    found.push((f.id, f.path.clone(), 10, "plaintext segment in an encrypted store, written after the key was first used: tampering; move it out of the data directory".to_string()));
                }
            }
        }
        Some(_) => {
            if let Some((f, _)) = headers.iter().find(|(_, h)| h.encrypted) {
                found.push((f.id, dir.join(MANIFEST_FILE_NAME), 0, format!("MANIFEST is not authenticated under the key, yet segment {} is encrypted: the manifest was replaced", f.id)));
            }
        }
        None => {}
    }
    for (id, path, offset, what) in found {
        acc.issue(id, &path, offset, what);
    }
}
