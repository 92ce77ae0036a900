//! Pages of the job table, newest first (`Runtime::jobs_page`, and
//! `Runtime::jobs` page by page): issue 12, step 4, ARCHITECTURE.md
//! "5. API changes" and "Step 4 as built".
//!
//! A page is filled chunk by chunk (`TableView::newest_rows`, at most
//! `CHUNK_PAGES` row pages each), the state lock taken for one chunk and
//! released before the next, so a listing never holds it for a scan of
//! the whole table, and the dispatcher and the commit thread run between
//! chunks. The cursor is a job id, so rows that arrive meanwhile (higher
//! ids) never shift a page, and each id is visited once.

use std::cell::Cell;
use std::ops::{ControlFlow, Deref};

use crate::state::State;
use crate::status::{build_status, filter_matches};
use crate::table::keys::ROWS_PER_PAGE;
use crate::table::kinds::KindId;
use crate::table::view::Resume;
use crate::{JobId, JobQuery, JobStatus, JobsPage, RuntimeError};

/// Row pages read per hold of the state lock.
pub const CHUNK_PAGES: usize = 16;

/// A kind or text filter's first page goes on counting the matches past
/// the page while it has read fewer rows than this: a table that small
/// gets an exact `total`.
pub const COUNTED_ROWS: u64 = 10_000;

/// One page for `query`, the state lock taken by `lock` once per chunk.
pub fn page<G: Deref<Target = State>>(
    lock: impl FnMut() -> G,
    query: &JobQuery,
) -> Result<JobsPage, RuntimeError> {
    page_within(lock, query, JobQuery::MAX_SCANNED_ROWS)
}

/// `page`, a kind or text filter stopping once `max_scanned` rows were
/// read (`RuntimeOptions::listing_rows_per_call`).
pub fn page_within<G: Deref<Target = State>>(
    mut lock: impl FnMut() -> G,
    query: &JobQuery,
    max_scanned: u64,
) -> Result<JobsPage, RuntimeError> {
    let filter = &query.filter;
    if query.limit == 0 {
        return Err(RuntimeError::Invalid(
            "a page holds at least one job: ask for a limit of 1 or more".into(),
        ));
    }
    // A text filter has no index and no count: it reads rows, a bounded
    // number per call, and counts them only on a first page of a small
    // table. So does a kind filter while the kind index is not complete
    // (an image from before it, being refiled); once it is, the kind's
    // pages come from its index (`table::kind_index`).
    // Its count is exact where every row's kind is counted
    // (`Book::kind_counts`); else a first page counts a small table.
    let (by_kind, kind_counted) = match filter.kind.is_some() {
        true => {
            let st = lock();
            let indexed = st.book.kind_refile.is_none();
            (indexed, indexed && st.book.kind_counts.is_some())
        }
        false => (false, false),
    };
    let bounded = filter.text.is_some() || (filter.kind.is_some() && !by_kind);
    // A kind and a state from their two indexes may list chunk after
    // chunk of pages that only one of them names (a common kind and a
    // common state that rarely meet): each chunk costs its pages' worth
    // of the row budget, so the call stops with a cursor as a text
    // filter does, however few rows it read.
    let paired = by_kind && filter.state.is_some();
    let mut chunks = 0u64;
    let exact = !bounded && (!by_kind || kind_counted);
    let counting = !exact && query.before.is_none();
    // `newest_rows` gives only rows in the state asked for (and, from the
    // kind index, of the kind), and lost rows of its pages whose made-up
    // state (failed) and kind ("(lost)") differ: they show (G7).
    let rest = crate::JobFilter {
        state: None,
        kind: filter.kind.clone().filter(|_| !by_kind),
        ..filter.clone()
    };
    let mut below = query.before.unwrap_or(JobId::MAX);
    let mut out = JobsPage::default();
    // The oldest job on the page, and whether an older match was seen.
    let (mut last, mut older) = (None, false);
    let mut matched = 0u64;
    // Every row slot looked at, tombstones included: the work done.
    let scanned = Cell::new(0u64);
    loop {
        let st = lock();
        below = below.min(st.book.next_id);
        let rows = crate::table::view::Rows {
            state: filter.state,
            kind: match (by_kind, filter.kind.as_deref()) {
                (true, Some(name)) => match st.book.kind_ids.id(name) {
                    Some(id) => Some(id),
                    // No job ever had this kind.
                    None => {
                        out.total = Some(0);
                        break;
                    }
                },
                _ => None,
            },
        };
        if out.total.is_none() && exact {
            out.total = Some(exact_total(&st, filter, rows.kind));
        }
        let jobs: &mut Vec<JobStatus> = &mut out.jobs;
        let resume = st
            .table
            .newest_rows(rows, below, CHUNK_PAGES, &scanned, |job| {
                // Its creation is not durable yet (`Book::placed`).
                if !filter_matches(&rest, &job) || st.book.placed.contains(&job.id) {
                    return ControlFlow::Continue(());
                }
                matched += 1;
                if jobs.len() < query.limit {
                    jobs.push(build_status(&st, &job));
                    last = Some(job.id);
                    return ControlFlow::Continue(());
                }
                older = true;
                match counting && scanned.get() < COUNTED_ROWS {
                    true => ControlFlow::Continue(()),
                    false => ControlFlow::Break(()),
                }
            })?;
        drop(st);
        match resume {
            // The page is full and an older match follows it.
            Resume::Stopped => break,
            Resume::End => {
                if counting {
                    out.total = Some(matched);
                }
                break;
            }
            Resume::Below(next) => {
                below = next;
                let counted = scanned.get() >= COUNTED_ROWS;
                if older && counted {
                    break;
                }
                chunks += 1;
                let chunk_rows = chunks.saturating_mul(CHUNK_PAGES as u64 * ROWS_PER_PAGE);
                let spent = (bounded && scanned.get() >= max_scanned)
                    || (paired && chunk_rows >= max_scanned);
                if spent {
                    // Stopped short: the next call goes on from here.
                    out.next_before = Some(next);
                    break;
                }
            }
        }
    }
    if older {
        out.next_before = last;
    }
    out.scanned_rows = scanned.get();
    out.jobs.reverse();
    Ok(out)
}

/// The count of `filter`'s jobs (a state, and a kind of id `kind`, or
/// all) from the book, no row read: `by_state`, or `kind_counts` for a
/// kind.
fn exact_total(st: &State, filter: &crate::JobFilter, kind: Option<KindId>) -> u64 {
    let by_state = match kind {
        None => st.book.by_state,
        Some(k) => {
            let counts = st.book.kind_counts.as_ref().and_then(|c| c.get(&k));
            let mut by_state = [0u64; 8];
            by_state.copy_from_slice(&counts.copied().unwrap_or_default()[..8]);
            by_state
        }
    };
    // The book counts a placed job (its creation not durable yet); the
    // rows skip it, and so does the total.
    let placed = (st.book.placed.iter())
        .filter(|id| {
            st.table.get(id).is_some_and(|j| {
                filter.state.is_none_or(|s| j.state == s) && kind.is_none_or(|k| j.kind_id == k)
            })
        })
        .count() as u64;
    match filter.state {
        Some(s) => by_state[s.index()],
        // Saturating: counts restored from a damaged checkpoint record
        // must not panic a listing.
        None => by_state.iter().fold(0u64, |a, b| a.saturating_add(*b)),
    }
    .saturating_sub(placed)
}

/// Every job matching `filter`, ascending id, read page by page (the lock
/// released between chunks as `page` does); the error of a page that
/// cannot be read, never a partial list.
pub fn all<G: Deref<Target = State>>(
    mut lock: impl FnMut() -> G,
    filter: crate::JobFilter,
) -> Result<Vec<JobStatus>, RuntimeError> {
    let mut query = JobQuery {
        filter,
        before: None,
        limit: JobQuery::MAX_LIMIT,
    };
    let mut pages = Vec::new();
    loop {
        let page = page(&mut lock, &query)?;
        pages.push(page.jobs);
        match page.next_before {
            Some(b) => query.before = Some(b),
            None => break,
        }
    }
    Ok(pages.into_iter().rev().flatten().collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logged_tests::Logged;
    use crate::meta::Meta;
    use crate::{JobFilter, JobState};

    /// 40 checkpointed pages of 64 jobs (ids 1..=2560): every job
    /// completed but three failed, far apart (ids 5, 700 and 1500); every
    /// job of kind `k` but four of kind `rare` (ids 9, 700, 1500 and 2000,
    /// in pages 0, 10, 23 and 31).
    fn many_pages() -> Logged {
        let mut logged = Logged::new(crate::state_tests::state());
        let kind = |job| match job {
            9 | 700 | 1500 | 2000 => "rare",
            _ => "k",
        };
        logged.simple_jobs_of_kinds_done(40 * 64, kind, |job| {
            Some(match job {
                5 | 700 | 1500 => Err("boom".into()),
                _ => Ok(None),
            })
        });
        logged.checkpoint();
        assert_eq!(logged.st.table.values().count(), 0, "every row left RAM");
        logged
    }

    fn query(state: Option<JobState>, before: Option<JobId>, limit: usize) -> JobQuery {
        JobQuery {
            filter: JobFilter {
                state,
                ..JobFilter::default()
            },
            before,
            limit,
        }
    }

    /// The page and how many row pages it read; its index scans gave at
    /// most a chunk's worth of keys (before: every page's key).
    fn page_of(logged: &Logged, q: &JobQuery) -> (JobsPage, u64) {
        let (before, keys) = (logged.page_reads(), logged.keys_scanned());
        let page = page(|| &logged.st, q).unwrap();
        let keys = logged.keys_scanned() - keys;
        assert!(keys <= CHUNK_PAGES as u64, "{keys} index keys scanned");
        (page, logged.page_reads() - before)
    }

    fn ids(page: &JobsPage) -> Vec<JobId> {
        page.jobs.iter().map(|j| j.id).collect()
    }

    /// Before step 4 a listing read every row page of the table (40 here)
    /// to list the newest 100; now it reads the pages that hold them and
    /// the one after, to know an older page follows.
    #[test]
    fn the_newest_page_reads_only_the_row_pages_it_shows() {
        let logged = many_pages();
        let (page, reads) = page_of(&logged, &query(None, None, 100));
        assert_eq!(ids(&page), (2461..=2560).collect::<Vec<_>>());
        assert_eq!(page.next_before, Some(2461));
        assert_eq!(page.total, Some(2560));
        assert!(reads <= 3, "{reads} row pages read for the newest 100");

        let (page, reads) = page_of(&logged, &query(Some(JobState::Completed), None, 100));
        assert_eq!(ids(&page), (2461..=2560).collect::<Vec<_>>());
        assert_eq!(page.total, Some(2557));
        assert!(
            reads <= 3,
            "{reads} row pages read for the newest 100 completed"
        );

        let (page, reads) = page_of(&logged, &query(Some(JobState::Completed), Some(1510), 10));
        assert_eq!(
            ids(&page),
            (1499..=1509).filter(|&i| i != 1500).collect::<Vec<_>>()
        );
        assert_eq!(page.next_before, Some(1499));
        assert!(reads <= 2, "{reads} row pages read for a page before 1510");
    }

    /// A rare state lists from its own index: the three failed jobs cost
    /// the three pages that hold them, not a read of all 40.
    #[test]
    fn a_rare_state_reads_only_the_pages_its_index_names() {
        let logged = many_pages();
        let (page, reads) = page_of(&logged, &query(Some(JobState::Failed), None, 100));
        assert_eq!(ids(&page), vec![5, 700, 1500]);
        assert_eq!((page.next_before, page.total), (None, Some(3)));
        assert_eq!(reads, 3);

        let (page, reads) = page_of(&logged, &query(Some(JobState::Failed), None, 2));
        assert_eq!(ids(&page), vec![700, 1500]);
        assert_eq!(page.next_before, Some(700));
        assert_eq!(reads, 3, "the third tells an older page follows");
        let (page, _) = page_of(&logged, &query(Some(JobState::Failed), Some(700), 2));
        assert_eq!((ids(&page), page.next_before), (vec![5], None));
    }

    fn of_kind(
        kind: &str,
        state: Option<JobState>,
        before: Option<JobId>,
        limit: usize,
    ) -> JobQuery {
        let mut q = query(state, before, limit);
        q.filter.kind = Some(kind.into());
        q
    }

    /// A rare kind lists from its own index (`KIND_INDEX`): its four jobs
    /// cost the four pages that hold them (before, a kind filter read
    /// rows: all 40 pages here), and a kind and a state the pages both
    /// indexes name (three: page 0 holds a failed job and a rare one,
    /// not one both; the masks are not read).
    #[test]
    fn a_rare_kind_reads_only_the_pages_its_index_names() {
        let logged = many_pages();
        let (page, reads) = page_of(&logged, &of_kind("rare", None, None, 100));
        assert_eq!(ids(&page), vec![9, 700, 1500, 2000]);
        assert_eq!((page.next_before, page.total), (None, Some(4)));
        assert_eq!(reads, 4);

        let (page, reads) = page_of(&logged, &of_kind("rare", None, None, 2));
        assert_eq!(ids(&page), vec![1500, 2000]);
        assert_eq!((page.next_before, page.total), (Some(1500), Some(4)));
        assert_eq!(
            reads, 3,
            "the third tells an older page follows; the book counts"
        );
        let (page, _) = page_of(&logged, &of_kind("rare", None, Some(1500), 2));
        assert_eq!((ids(&page), page.next_before), (vec![9, 700], None));
        assert_eq!(page.total, Some(4), "an older page is counted too");

        let failed = Some(JobState::Failed);
        let (page, reads) = page_of(&logged, &of_kind("rare", failed, None, 100));
        assert_eq!(ids(&page), vec![700, 1500]);
        assert_eq!(page.total, Some(2));
        assert_eq!(reads, 3, "pages 0, 10 and 23: both indexes name them");

        // A dense state: the rare kind's pages lead, and the completed
        // index is listed one chunk, then looked at only at the kind's
        // pages (before, each chunk went only as low as the completed
        // stream's 16 keys reached, and listed the kind's stream again).
        let keys = logged.keys_scanned();
        let completed = Some(JobState::Completed);
        let page = super::page(|| &logged.st, &of_kind("rare", completed, None, 100)).unwrap();
        assert_eq!(ids(&page), vec![9, 2000]);
        let keys = logged.keys_scanned() - keys;
        assert!(
            keys <= 4 + CHUNK_PAGES as u64 + 4,
            "{keys} index keys scanned: the kind's 4, a chunk of the state's, a look per kind page"
        );

        let (page, reads) = page_of(&logged, &of_kind("never", None, None, 100));
        assert_eq!((ids(&page), page.total, reads), (vec![], Some(0), 0));
    }

    /// Pages follow one another without a gap or a repeat, rows changed
    /// since the checkpoint (in RAM) over their stored state.
    #[test]
    fn pages_cover_the_table_once_with_rows_in_ram_over_the_stored_ones() {
        let mut logged = many_pages();
        let retry = Meta::Control {
            job: 700,
            at_ms: 3,
            action: crate::meta::Control::Retry,
        };
        logged.apply(&retry).unwrap();
        let failed = page(|| &logged.st, &query(Some(JobState::Failed), None, 100)).unwrap();
        assert_eq!(ids(&failed), vec![5, 1500], "the retried job is queued now");
        let queued = page(|| &logged.st, &query(Some(JobState::Queued), None, 100)).unwrap();
        assert_eq!(ids(&queued), vec![700]);

        let mut seen = Vec::new();
        let mut q = query(None, None, 333);
        loop {
            let p = page(|| &logged.st, &q).unwrap();
            seen.splice(0..0, ids(&p));
            match p.next_before {
                Some(b) => q.before = Some(b),
                None => break,
            }
        }
        assert_eq!(seen, (1..=2560).collect::<Vec<_>>());
    }

    /// An index that cannot be scanned never makes a short page: the
    /// pages below the cursor are read in turn instead, and one of them
    /// that cannot be read either makes the listing an error naming the
    /// index, never a page with rows missing or made up.
    #[test]
    fn a_page_whose_index_cannot_be_scanned_is_whole_or_an_error() {
        let logged = many_pages();
        logged.fail_scans(true);
        let p = page(|| &logged.st, &query(Some(JobState::Failed), None, 100)).unwrap();
        assert_eq!((ids(&p), p.next_before), (vec![5, 700, 1500], None));
        let p = page(|| &logged.st, &query(None, Some(1000), 50)).unwrap();
        assert_eq!(ids(&p), (950..=999).collect::<Vec<_>>());
        logged.fail_reads(|k| k.owner == crate::table::keys::TABLE_OWNER);
        let err = page(|| &logged.st, &query(None, None, 10)).expect_err("incomplete");
        assert!(err.to_string().contains("index"), "{err}");
        assert!(matches!(err, RuntimeError::Corrupt(_)), "{err:?}");
        let err = all(|| &logged.st, JobFilter::default()).expect_err("no partial list");
        assert!(matches!(err, RuntimeError::Corrupt(_)), "{err:?}");
    }

    /// Every page of `q`'s listing, newest first, as one list of ids.
    fn every_page(logged: &Logged, mut q: JobQuery) -> Vec<JobStatus> {
        let mut seen = Vec::new();
        loop {
            let p = page(|| &logged.st, &q).unwrap();
            seen.splice(0..0, p.jobs);
            match p.next_before {
                Some(b) => q.before = Some(b),
                None => return seen,
            }
        }
    }

    /// A page chosen from a state's index that cannot be read gives the
    /// rows of that state's mask as lost, and a state filter lets them
    /// through (their made-up state is failed): the listing still holds
    /// as many jobs as the state counts, the lost ones saying why.
    #[test]
    fn a_state_listing_shows_the_rows_of_an_unreadable_page_as_lost() {
        let logged = many_pages();
        logged.fail_reads_of(crate::table::keys::row_page(30));
        let q = query(Some(JobState::Completed), None, 100);
        let total = page(|| &logged.st, &q).unwrap().total;
        let listed = every_page(&logged, q);
        assert_eq!(Some(listed.len() as u64), total);
        let lost: Vec<JobId> = listed
            .iter()
            .filter(|j| {
                j.failure_reason
                    .as_deref()
                    .is_some_and(|r| r.contains("row lost"))
            })
            .map(|j| j.id)
            .collect();
        assert_eq!(lost, (1920..=1983).collect::<Vec<_>>());
        let failed = every_page(&logged, query(Some(JobState::Failed), None, 100));
        let failed: Vec<JobId> = failed.iter().map(|j| j.id).collect();
        assert_eq!(failed, vec![5, 700, 1500], "page 30 held no failed job");
    }

    /// A destroyed job's tombstone in a page that cannot be read is no
    /// lost job: the page's destroyed mask is not read as rows.
    #[test]
    fn a_tombstone_of_an_unreadable_page_is_not_listed_as_lost() {
        let mut logged = many_pages();
        let destroy = Meta::Control {
            job: 1930,
            at_ms: 3,
            action: crate::meta::Control::Destroy,
        };
        logged.apply(&destroy).unwrap();
        logged.checkpoint();
        logged.fail_reads_of(crate::table::keys::row_page(30));
        let listed = every_page(&logged, query(None, None, 1000));
        let ids: Vec<JobId> = listed.iter().map(|j| j.id).collect();
        let expected: Vec<JobId> = (1..=2560).filter(|&i| i != 1930).collect();
        assert_eq!(ids, expected);
    }

    /// A rare state's listing walks the rows in RAM (every row not yet
    /// written by a checkpoint) a bounded number per call, not all of them
    /// under one hold of the lock: with thousands queued since the
    /// checkpoint and three failed before it, the failed listing takes
    /// several calls, each looking at about a chunk.
    #[test]
    fn a_rare_state_walks_the_rows_in_ram_a_chunk_per_call() {
        let mut logged = Logged::new(crate::state_tests::state());
        logged.simple_jobs_done(4000, |job| match job {
            5 | 700 | 1500 => Some(Err("boom".into())),
            _ => None,
        });
        logged.checkpoint();
        let created = Meta::Created {
            first_id: 4001,
            at_ms: 3,
            specs: vec![crate::JobSpec::simple("k", serde_json::Value::Null); 4000],
        };
        logged.apply(&created).unwrap();
        assert_eq!(logged.st.table.values().count(), 4000, "rows in RAM");
        let (mut below, mut calls, mut found) = (JobId::MAX, 0, Vec::new());
        loop {
            calls += 1;
            let slots = Cell::new(0);
            let resume = logged
                .st
                .table
                .newest_rows(Some(JobState::Failed), below, CHUNK_PAGES, &slots, |j| {
                    found.push(j.id);
                    ControlFlow::Continue(())
                })
                .unwrap();
            let most = 2 * (CHUNK_PAGES as u64) * 64;
            assert!(slots.get() <= most, "{} slots in one call", slots.get());
            match resume {
                Resume::Below(next) => below = next,
                Resume::End => break,
                Resume::Stopped => unreachable!("the visitor never breaks"),
            }
        }
        assert_eq!(found, vec![1500, 700, 5]);
        assert!(calls >= 4000 / (CHUNK_PAGES * 64), "{calls} calls");
    }

    /// A state whose index keys were all deleted (every queued job since
    /// completed) is listed looking at a bounded number of deleted keys
    /// per call, not at every one of them under one hold of the lock
    /// (until a compaction drops them).
    #[test]
    fn a_state_index_of_deleted_keys_is_walked_a_bounded_number_per_call() {
        let mut logged = Logged::new(crate::state_tests::state());
        let n = 70 * 64;
        logged.simple_jobs_done(n, |_| None);
        logged.checkpoint();
        let outcomes = (1..=n as u64)
            .map(|job| crate::meta::SimpleOutcome {
                job,
                started_us: 1,
                result: Ok(None),
                retry_at_ms: None,
            })
            .collect();
        let done = Meta::SimpleDone {
            at_ms: 3,
            at_us: None,
            outcomes,
        };
        logged.apply(&done).unwrap();
        logged.checkpoint();
        let (mut below, mut calls) = (JobId::MAX, 0);
        loop {
            calls += 1;
            let keys = logged.keys_examined();
            let resume = logged
                .st
                .table
                .newest_rows(Some(JobState::Queued), below, 1, &Cell::new(0), |j| {
                    panic!("job {} is not queued", j.id)
                })
                .unwrap();
            let keys = logged.keys_examined() - keys;
            assert!(keys <= 64, "{keys} index keys looked at in one call");
            match resume {
                Resume::Below(next) => below = next,
                Resume::End => break,
                Resume::Stopped => unreachable!("the visitor never breaks"),
            }
        }
        assert!(calls > 1, "{calls} calls");
        let p = page(|| &logged.st, &query(Some(JobState::Queued), None, 100)).unwrap();
        assert_eq!((p.jobs.len(), p.total, p.next_before), (0, Some(0), None));
    }

    /// Tombstones count against a kind or text filter's budget as rows
    /// do: a table of destroyed jobs is read a bounded number of row
    /// pages per call, never whole in one.
    #[test]
    fn a_filters_budget_counts_the_tombstones_it_passes() {
        let mut logged = many_pages();
        for job in 1..=40 * 64 {
            let destroy = Meta::Control {
                job,
                at_ms: 3,
                action: crate::meta::Control::Destroy,
            };
            logged.apply(&destroy).unwrap();
        }
        logged.checkpoint();
        let q = JobQuery {
            filter: JobFilter {
                text: Some("no such text".into()),
                ..JobFilter::default()
            },
            before: None,
            limit: 100,
        };
        let reads = logged.page_reads();
        let p = page_within(|| &logged.st, &q, 1000).unwrap();
        let reads = logged.page_reads() - reads;
        assert!(p.next_before.is_some(), "stopped at its budget");
        assert!(reads <= 1000 / 64 + 1 + 16, "{reads} row pages read");
        assert!(p.scanned_rows >= 1000, "{}", p.scanned_rows);
    }

    /// A kind or text filter has no index: it reads at most its budget of
    /// rows per call (`JobQuery::MAX_SCANNED_ROWS`; 1000 here), give or
    /// take a chunk, and says where to go on; its total is exact only for
    /// a first page that read the whole table.
    #[test]
    fn a_text_filter_stops_after_its_row_budget_with_a_cursor() {
        let logged = many_pages();
        let mut q = JobQuery {
            filter: JobFilter {
                text: Some("no such text".into()),
                ..JobFilter::default()
            },
            before: None,
            limit: 100,
        };
        let mut scanned = Vec::new();
        loop {
            let p = page_within(|| &logged.st, &q, 1000).unwrap();
            assert_eq!((p.jobs.len(), p.total), (0, None));
            assert!(p.scanned_rows <= 1000 + 16 * 64, "{}", p.scanned_rows);
            scanned.push(p.scanned_rows);
            match p.next_before {
                Some(b) => q.before = Some(b),
                None => break,
            }
        }
        assert!(scanned.len() > 1, "{scanned:?}");
        assert_eq!(scanned.iter().sum::<u64>(), 2560, "each row read once");

        // Kind `k`'s jobs (all but the four rare ones) by text.
        q.filter = JobFilter {
            text: Some("k".into()),
            ..JobFilter::default()
        };
        q.before = None;
        let p = page_within(|| &logged.st, &q, 1000).unwrap();
        assert_eq!(ids(&p), (2461..=2560).collect::<Vec<_>>());
        assert_eq!((p.next_before, p.total), (Some(2461), None));
        // A table under `COUNTED_ROWS` rows: the first page counts them.
        let p = page(|| &logged.st, &q).unwrap();
        assert_eq!((p.next_before, p.total), (Some(2461), Some(2556)));
        // A kind filter lists from the kind index: no row budget.
        let by_kind = of_kind("k", None, None, 100);
        let p = page_within(|| &logged.st, &by_kind, 1000).unwrap();
        assert_eq!((p.next_before, p.total), (Some(2461), Some(2556)));
        q.before = Some(2461);
        let p = page(|| &logged.st, &q).unwrap();
        assert_eq!((p.next_before, p.total), (Some(2361), None));
    }

    /// A kind and a state that are both common but rarely meet: each
    /// chunk lists a chunk of both index streams and finds no page both
    /// name. The listing stops at its budget of chunks (the row budget's
    /// worth of pages: here one chunk) with the cursor to go on from, as a
    /// text filter does, instead of walking both streams to their end in
    /// one call; the pages in turn find the one job that is both.
    #[test]
    fn a_kind_and_a_state_that_rarely_meet_stop_at_the_budget_with_a_cursor() {
        let mut logged = Logged::new(crate::state_tests::state());
        const PAGES: u64 = 100;
        // Kind `a` in the even pages, `b` in the odd; one failed job in
        // every odd page, and job 5 (page 0, kind `a`) failed too.
        let page_no = |job: JobId| job / crate::table::keys::ROWS_PER_PAGE;
        logged.simple_jobs_of_kinds_done(
            (PAGES * 64 - 1) as usize,
            move |job| match page_no(job) % 2 {
                0 => "a",
                _ => "b",
            },
            move |job| {
                let odd_first = page_no(job) % 2 == 1 && job % 64 == 0;
                Some(match job == 5 || odd_first {
                    true => Err("boom".into()),
                    false => Ok(None),
                })
            },
        );
        logged.checkpoint();
        let mut q = of_kind("a", Some(JobState::Failed), None, 100);
        let mut calls = 0;
        let found = loop {
            calls += 1;
            let keys = logged.keys_scanned();
            let p = page_within(|| &logged.st, &q, 1000).unwrap();
            let keys = logged.keys_scanned() - keys;
            assert!(
                keys <= 3 * CHUNK_PAGES as u64,
                "call {calls}: {keys} index keys scanned for one chunk's budget"
            );
            assert_eq!(p.total, Some(1), "the book counts the kind by state");
            match p.next_before {
                Some(b) if p.jobs.is_empty() => q.before = Some(b),
                _ => break p,
            }
        };
        assert_eq!((ids(&found), found.next_before), (vec![5], None));
        assert!(calls > 1, "stopped at its budget: {calls} call(s)");
    }

    /// Counts a hostile or damaged checkpoint record restored can pass
    /// u64 when summed: the total says so (saturates), never panics the
    /// listing (found by `hostile_meta`'s long run, seed
    /// 1796078674662759195: "attempt to add with overflow").
    #[test]
    fn a_total_over_counts_that_would_overflow_saturates() {
        let mut st = crate::state_tests::state();
        st.book.by_state = [u64::MAX / 2, u64::MAX / 2, 3, 0, 0, 0, 0, 0];
        assert_eq!(exact_total(&st, &JobFilter::default(), None), u64::MAX);
        st.book.by_state[0] = 5;
        assert_eq!(
            exact_total(&st, &JobFilter::default(), None),
            5 + u64::MAX / 2 + 3
        );
    }
}
