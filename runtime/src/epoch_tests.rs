//! Lease epochs and fencing across opens: an epoch carries its open
//! generation, so a lease of an earlier process never matches one of this
//! process, and a commit is matched by epoch and work together.

use crate::meta::Meta;
use crate::state::{LeaseWork, State, EPOCH_COUNTER_BITS};
use crate::state_tests::{sliced_job_with_slices, state};

fn opened(st: &mut State, generation: u64) {
    st.apply(&Meta::Opened {
        generation,
        at_ms: 1,
    })
    .unwrap();
}

#[test]
fn epochs_carry_the_open_generation_in_their_high_bits() {
    let mut st = state();
    opened(&mut st, 7);
    sliced_job_with_slices(&mut st, 2, None);
    let t = st.lease(0, 0).unwrap();
    assert_eq!(t.epoch >> EPOCH_COUNTER_BITS, 7);
    assert_eq!(t.epoch & ((1 << EPOCH_COUNTER_BITS) - 1), 1);
}

#[test]
fn commit_with_a_stale_epoch_from_a_previous_open_is_fenced() {
    // The previous process (generation 1) leased slice 0 and died.
    let mut before = state();
    opened(&mut before, 1);
    sliced_job_with_slices(&mut before, 1, None);
    let stale = before.lease(0, 0).unwrap();
    // This process replays the same log, then opens generation 2, and
    // leases the same slice again.
    let mut st = state();
    opened(&mut st, 1);
    sliced_job_with_slices(&mut st, 1, None);
    opened(&mut st, 2);
    let fresh = st.lease(0, 0).unwrap();
    assert_ne!(fresh.epoch, stale.epoch, "epochs never repeat across opens");
    assert!(st.begin_commit(stale.epoch, &stale.claim()).is_none());
    assert_eq!(st.book.metrics.commits_fenced, 1);
    assert!(st.begin_commit(fresh.epoch, &fresh.claim()).is_some());
}

#[test]
fn commit_naming_other_work_under_a_live_epoch_is_fenced() {
    let mut st = state();
    sliced_job_with_slices(&mut st, 2, None);
    let t = st.lease(0, 0).unwrap();
    let LeaseWork::Slice { job, slice } = t.claim() else {
        panic!("a slice lease");
    };
    let other = LeaseWork::Slice {
        job,
        slice: slice + 1,
    };
    assert!(
        st.begin_commit(t.epoch, &other).is_none(),
        "epoch alone is not enough"
    );
    assert!(st
        .begin_commit(t.epoch, &LeaseWork::Before { job })
        .is_none());
    assert!(
        st.begin_commit(t.epoch, &t.claim()).is_some(),
        "the lease is untouched by the refused claims"
    );
}

#[test]
fn generation_from_a_compaction_snapshot_survives_it() {
    let mut st = state();
    opened(&mut st, 5);
    let snapshot = crate::snapshot::Snapshot::take(&st).unwrap();
    let mut replayed = state();
    for r in booster_store::CompactionPlan::meta_snapshot(&snapshot) {
        replayed.apply(&crate::meta::decode(&r).unwrap()).unwrap();
    }
    assert_eq!(replayed.book.generation, 5);
}
