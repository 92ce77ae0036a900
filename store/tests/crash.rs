//! Crash at every I/O operation of a workload (appends, segment rollover,
//! compaction) on the simulated file system, with unsynced writes dropped,
//! kept or torn; then reopen and check that the store holds exactly the
//! acknowledged steps, plus at most the one in flight, whole.

mod common;

use std::collections::BTreeSet;
use std::path::PathBuf;

use booster_store::format::{decode_manifest, decode_segment_header, MANIFEST_FILE_NAME};
use booster_store::fs::sim::{CrashMode, SimFileLayer};
use booster_store::{Batch, MasterKey, Store, StoreOptions};
use common::{dir, key, read_state, records, Plan, State};

const KEYS: u64 = 6;

#[derive(Clone, Debug)]
enum Step {
    /// Slice `key(v % KEYS)` with `records(v)` and meta record `v`, one batch.
    Append(u64),
    /// Drop the keys divisible by 3; meta snapshot = meta of the live slices.
    Compact,
    /// Record the watermark in the manifest (what the background thread does).
    Watermark,
    /// Delete `key(v % KEYS)` with meta record `v`, one batch.
    Delete(u64),
    /// Segment-by-segment compaction at a dead share of 0.5 keeping every
    /// slice (which segments it rewrites does not change what reads see);
    /// meta snapshot = meta of every slice.
    CompactSegments,
}

fn workload() -> Vec<Step> {
    let mut steps: Vec<Step> = (0..4).map(Step::Append).collect();
    steps.push(Step::Watermark);
    steps.extend((4..9).map(Step::Append));
    steps.push(Step::Watermark);
    steps.push(Step::Compact);
    steps.extend((9..14).map(Step::Append));
    steps.push(Step::Compact);
    steps.push(Step::Append(14));
    // Overwrites leave segments mostly dead; the deletions' tombstones lie
    // in them while a kept segment may hold an older frame of their key.
    steps.extend((15..22).map(Step::Append));
    steps.push(Step::Delete(20));
    steps.push(Step::Delete(16));
    steps.push(Step::CompactSegments);
    steps.push(Step::Append(22));
    steps.push(Step::CompactSegments);
    steps
}

fn opts(master: &MasterKey) -> StoreOptions {
    StoreOptions {
        segment_size_bytes: 700,
        zstd_level: 1,
        master_key: Some(master.clone()),
        // The periodic write would make the crash points depend on timing.
        watermark_interval_ms: 0,
        reserve_bytes: 0,
    }
}

fn plan_for(state: &State) -> Plan {
    plan_keeping(state, |k| k.seq % 3 != 0)
}

fn plan_keeping(state: &State, keep: impl Fn(&booster_store::SliceKey) -> bool) -> Plan {
    let live: BTreeSet<_> = state.slices.keys().filter(|k| keep(k)).copied().collect();
    let meta = live
        .iter()
        .map(|k| {
            let version = state.slices[k][0]
                .split(|b| *b == b',')
                .next()
                .unwrap()
                .to_vec();
            version
        })
        .collect();
    Plan { live, meta }
}

/// The model: the state after each step (index 0 = empty store).
fn model_states(steps: &[Step]) -> Vec<State> {
    let mut states = vec![State::default()];
    for step in steps {
        let mut next = states.last().unwrap().clone();
        match step {
            Step::Append(v) => {
                next.slices.insert(key(v % KEYS), records(*v));
                next.meta.push(v.to_string().into_bytes());
            }
            Step::Compact => {
                let plan = plan_for(&next);
                next.slices.retain(|k, _| plan.live.contains(k));
                next.meta = plan.meta;
            }
            Step::Delete(v) => {
                next.slices.remove(&key(v % KEYS));
                next.meta.push(v.to_string().into_bytes());
            }
            Step::CompactSegments => next.meta = plan_keeping(&next, |_| true).meta,
            Step::Watermark => {}
        }
        states.push(next);
    }
    states
}

/// Runs the workload until the first failure; returns the number of steps
/// that completed (acknowledged).
fn run(fs: &SimFileLayer, master: &MasterKey, steps: &[Step]) -> usize {
    run_counting(fs, master, steps).0
}

/// As `run`, also counting the segments the segment compactions rewrote.
fn run_counting(fs: &SimFileLayer, master: &MasterKey, steps: &[Step]) -> (usize, usize) {
    let mut rewritten = 0;
    let Ok((store, _)) = Store::open_with(fs.clone(), dir(), opts(master)) else {
        assert!(fs.has_crashed(), "open failed without a crash");
        return (0, 0);
    };
    let models = model_states(steps);
    for (i, step) in steps.iter().enumerate() {
        let result = match step {
            Step::Append(v) => store
                .append(
                    Batch::new()
                        .slice(key(v % KEYS), &records(*v))
                        .meta(v.to_string().into_bytes()),
                )
                .map(|_| ()),
            Step::Compact => store.compact(&plan_for(&models[i])).map(|_| ()),
            Step::Watermark => store.record_watermark(),
            Step::Delete(v) => store
                .append(
                    Batch::new()
                        .delete(key(v % KEYS))
                        .meta(v.to_string().into_bytes()),
                )
                .map(|_| ()),
            Step::CompactSegments => store
                .compact_segments(&plan_keeping(&models[i], |_| true), 0.5)
                .map(|report| rewritten += report.segments_rewritten),
        };
        if let Err(e) = result {
            assert!(fs.has_crashed(), "step {i} failed without a crash: {e}");
            return (i, rewritten);
        }
    }
    (steps.len(), rewritten)
}

fn reopen_and_check(fs: &SimFileLayer, master: &MasterKey, acceptable: &[&State], what: &str) {
    let (store, _) = Store::open_with(fs.clone(), dir(), opts(master))
        .unwrap_or_else(|e| panic!("{what}: reopen failed: {e}"));
    let first = read_state(&store).unwrap_or_else(|e| panic!("{what}: read failed: {e}"));
    assert!(
        acceptable.contains(&&first),
        "{what}: recovered state is none of the acceptable ones\n got {first:?}\n want one of {acceptable:?}"
    );
    assert!(
        store.verify().problems.is_empty(),
        "{what}: {:?}",
        store.verify()
    );
    drop(store);
    let (store, report) = Store::open_with(fs.clone(), dir(), opts(master)).unwrap();
    assert!(
        report.truncated.is_empty(),
        "{what}: second recovery truncated {report:?}"
    );
    assert_eq!(
        read_state(&store).unwrap(),
        first,
        "{what}: reopening twice differs"
    );
    // The recovered store takes writes again (new segment, fresh key).
    store
        .append(Batch::new().slice(key(100), &records(100)))
        .unwrap();
    assert_eq!(store.read_slice(&key(100)).unwrap().unwrap(), records(100));
}

#[test]
fn every_crash_point_recovers_exactly_the_acknowledged_steps() {
    let master = MasterKey::generate();
    let steps = workload();
    let models = model_states(&steps);
    let clean = SimFileLayer::new();
    let (done, rewritten) = run_counting(&clean, &master, &steps);
    assert_eq!(done, steps.len());
    assert!(rewritten > 0, "no segment compaction rewrote a segment");
    let total_ops = clean.mutating_ops();
    assert!(total_ops > 50, "workload too small: {total_ops} ops");
    let modes = [
        CrashMode::DropUnsynced,
        CrashMode::KeepUnsynced,
        CrashMode::TornUnsynced { seed: 1 },
        CrashMode::TornUnsynced { seed: 2 },
    ];
    for k in 1..=total_ops {
        let fs = SimFileLayer::new();
        fs.crash_at(Some(k));
        let done = run(&fs, &master, &steps);
        let acceptable: Vec<&State> = if done == steps.len() {
            vec![&models[done]]
        } else {
            vec![&models[done], &models[done + 1]]
        };
        for mode in modes {
            let image = fs.crash_image(mode);
            reopen_and_check(
                &image,
                &master,
                &acceptable,
                &format!("crash at op {k}, {mode:?}"),
            );
        }
    }
}

#[test]
fn a_crash_during_recovery_is_recovered_by_the_next_open() {
    let master = MasterKey::generate();
    let steps = workload();
    let models = model_states(&steps);
    let clean = SimFileLayer::new();
    run(&clean, &master, &steps);
    let total_ops = clean.mutating_ops();
    for k in (1..=total_ops).step_by(3) {
        let fs = SimFileLayer::new();
        fs.crash_at(Some(k));
        let done = run(&fs, &master, &steps);
        let acceptable: Vec<&State> = if done == steps.len() {
            vec![&models[done]]
        } else {
            vec![&models[done], &models[done + 1]]
        };
        let image = fs.crash_image(CrashMode::TornUnsynced { seed: k });
        for j in 1..12 {
            let second = image.snapshot();
            let before = second.mutating_ops();
            second.crash_at(Some(before + j));
            let _ = Store::open_with(second.clone(), dir(), opts(&master));
            let after = second.crash_image(CrashMode::TornUnsynced { seed: j });
            reopen_and_check(
                &after,
                &master,
                &acceptable,
                &format!("crash at op {k}, then recovery op {j}"),
            );
        }
    }
}

/// Three producers append concurrently (so groups hold several batches);
/// after a crash at any point every acknowledged batch is present and every
/// present slice came with its meta record (batches are atomic).
#[test]
fn concurrent_producers_lose_nothing_acknowledged_at_any_crash_point() {
    let master = MasterKey::generate();
    let mut crashed_runs = 0;
    for k in (1..120).step_by(2) {
        let fs = SimFileLayer::new();
        fs.crash_at(Some(k));
        let Ok((store, _)) = Store::open_with(fs.clone(), dir(), opts(&master)) else {
            continue;
        };
        let acked = std::sync::Mutex::new(Vec::new());
        std::thread::scope(|s| {
            for t in 0..3u64 {
                let (store, acked) = (&store, &acked);
                s.spawn(move || {
                    for i in 0..12 {
                        let v = 1000 * (t + 1) + i;
                        let batch = Batch::new()
                            .slice(key(v), &records(v))
                            .meta(v.to_string().into_bytes());
                        if store.append(batch).is_err() {
                            return;
                        }
                        acked.lock().unwrap().push(v);
                    }
                });
            }
        });
        drop(store);
        crashed_runs += usize::from(fs.has_crashed());
        for mode in [CrashMode::DropUnsynced, CrashMode::TornUnsynced { seed: k }] {
            let image = fs.crash_image(mode);
            let (store, _) = Store::open_with(image.clone(), dir(), opts(&master)).unwrap();
            let state = read_state(&store).unwrap();
            for v in acked.lock().unwrap().iter() {
                assert_eq!(
                    state.slices.get(&key(*v)),
                    Some(&records(*v)),
                    "crash at {k}: acked {v} lost"
                );
            }
            let slice_versions: BTreeSet<u64> = state.slices.keys().map(|k| k.seq).collect();
            let meta_versions: BTreeSet<u64> = state
                .meta
                .iter()
                .map(|m| String::from_utf8(m.clone()).unwrap().parse().unwrap())
                .collect();
            assert_eq!(
                slice_versions, meta_versions,
                "crash at {k}: a batch is partly visible"
            );
            drop(store);
            let (store, _) = Store::open_with(image, dir(), opts(&master)).unwrap();
            assert_eq!(
                read_state(&store).unwrap(),
                state,
                "crash at {k}: reopening twice differs"
            );
        }
    }
    assert!(crashed_runs > 40, "only {crashed_runs} runs crashed");
}

/// After a crash at any point (in compaction's unlink phase too), a listed
/// compaction member that then goes missing is named by a degraded open,
/// which deletes no segment: not the other members, not the old segments
/// (they may hold the only other copy of what the member held).
#[test]
fn a_member_missing_after_a_crash_at_any_point_is_named_and_no_segment_is_deleted() {
    let master = MasterKey::generate();
    let steps = workload();
    let clean = SimFileLayer::new();
    run(&clean, &master, &steps);
    let total_ops = clean.mutating_ops();
    let mut checked = 0;
    for k in 1..=total_ops {
        let fs = SimFileLayer::new();
        fs.crash_at(Some(k));
        run(&fs, &master, &steps);
        for mode in [CrashMode::DropUnsynced, CrashMode::KeepUnsynced] {
            let image = fs.crash_image(mode);
            let Some(manifest) = image.read_file(&dir().join(MANIFEST_FILE_NAME)) else {
                continue;
            };
            let manifest = decode_manifest(&manifest).unwrap();
            let member = manifest.segments.iter().find_map(|id| {
                let path = dir().join(format!("seg-{id:016}.bseg"));
                let bytes = image.read_file(&path)?;
                let header = decode_segment_header(&bytes).ok()?;
                (header.group.group_id != 0).then_some(path)
            });
            let Some(victim) = member else { continue };
            image.remove_file(&victim);
            let before = image.files(dir());
            // Only what never held published data may go (an unpublished
            // member, a created but unlisted newest segment, a newest one
            // without a whole batch).
            let held_batches: Vec<PathBuf> = before
                .iter()
                .filter(|p| {
                    image.read_file(p).is_some_and(|b| {
                        !booster_store::format::scan_segment(&b).entries.is_empty()
                            || booster_store::format::read_sealed_entries(&b).is_ok()
                    })
                })
                .cloned()
                .collect();
            let what = format!("crash at op {k}, {mode:?}");
            let (store, report) = Store::open_with(image.clone(), dir(), opts(&master))
                .unwrap_or_else(|e| panic!("{what}: a missing member must not stop open: {e}"));
            assert!(
                report
                    .damaged
                    .iter()
                    .any(|d| d.path == victim && !d.identified),
                "{what}: the missing member is named: {report:?}"
            );
            drop(store);
            let after = image.files(dir());
            let published = |p: &PathBuf| {
                let name = p.file_name().unwrap().to_string_lossy();
                let id: Option<u64> = name
                    .strip_prefix("seg-")
                    .and_then(|n| n.strip_suffix(".bseg"))
                    .and_then(|n| n.parse().ok());
                id.is_some_and(|id| manifest.lists(id) || id < manifest.compacted_below)
            };
            for p in held_batches.iter().filter(|p| published(p)) {
                assert!(after.contains(p), "{what}: open deleted {}", p.display());
            }
            checked += 1;
        }
    }
    assert!(
        checked > 40,
        "only {checked} images held a published member"
    );
}
