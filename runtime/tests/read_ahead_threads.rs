//! The reader threads of downloads read ahead, counted in a binary of its
//! own: the process runs no other test, so every `booster-read` thread
//! seen here is one of this test's downloads.

#[path = "behaviours/common.rs"]
#[allow(dead_code)]
mod common;

use std::collections::BTreeSet;

use booster_runtime::*;

use common::*;

/// The ids of this process's download reader threads.
fn reader_threads() -> BTreeSet<u64> {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|task| {
            let task = task.ok()?;
            let comm = std::fs::read_to_string(task.path().join("comm")).ok()?;
            comm.starts_with("booster-read")
                .then(|| task.file_name().to_str()?.parse().ok())?
        })
        .collect()
}

/// The reader threads once at least `n` are named (a thread names
/// itself as it starts), or those after a second.
fn at_least(n: usize) -> BTreeSet<u64> {
    reader_threads_once(|count| count >= n)
}

/// The reader threads once fewer than `n` are left, or those after a
/// second. A joined thread has ended, but the kernel lists it under
/// /proc/self/task until it is reaped, a moment after the join returns.
fn fewer_than(n: usize) -> BTreeSet<u64> {
    reader_threads_once(|count| count < n)
}

/// The reader threads once their count meets `enough`, or those after a
/// second (the caller's assertion then says what was missing).
fn reader_threads_once(enough: impl Fn(usize) -> bool) -> BTreeSet<u64> {
    for _ in 0..100 {
        let threads = reader_threads();
        if enough(threads.len()) {
            return threads;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    reader_threads()
}

/// A 60-slice job: a download reads it ahead on 2 threads or more and
/// hands out every record in order; at most 2 downloads read ahead at
/// once (a third reads on its own thread, starting none, same records);
/// a download dropped after one record leaves no reader thread behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn downloads_read_ahead_on_their_own_threads_two_at_a_time_and_leave_none() {
    let dir = tempfile::tempdir().unwrap();
    let rt = Runtime::open(opts(dir.path(), 2)).await.unwrap();
    rt.register_sliced("echo", echo());
    let input = records(600);
    let job = rt.submit(sliced("echo", 10)).await.unwrap();
    upload_all(&rt, job, &input).await;
    let s = rt.wait(job).await.unwrap();
    assert_eq!(s.slices_done, 60, "{s:?}");
    assert!(reader_threads().is_empty(), "no download yet");

    // One download: several readers, all of them its own.
    let mut main = rt.download(job, Category::Main).unwrap();
    let mut got = vec![main.next().expect("a record").unwrap()];
    let readers = at_least(2);
    got.extend(main.map(Result::unwrap));
    assert_eq!(got, input, "in input order");
    assert!(
        readers.len() >= 2,
        "{} reader thread(s) while a download of 60 slices ran",
        readers.len()
    );
    let left = fewer_than(1);
    assert!(left.is_empty(), "a download read to its end keeps {left:?}");

    // Two downloads hold the runtime's read-ahead slots.
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut d = rt.download(job, Category::Main).unwrap();
        assert_eq!(d.next().unwrap().unwrap(), input[0]);
        held.push(d);
    }
    let holding = at_least(4);
    assert!(
        holding.len() >= 4,
        "{} readers for two downloads",
        holding.len()
    );

    // A third reads on its own thread: no reader of its own, same records.
    let third = rt.download(job, Category::Main).unwrap();
    let mut got = Vec::new();
    for r in third {
        got.push(r.unwrap());
        let new: Vec<_> = reader_threads().difference(&holding).copied().collect();
        assert!(new.is_empty(), "the third download started readers {new:?}");
    }
    assert_eq!(got, input, "in input order");

    // A download dropped part-way leaves none of its readers.
    let first = reader_threads();
    drop(held.remove(0));
    let left = fewer_than(first.len());
    assert!(
        left.len() < first.len() && left.len() >= 2,
        "{} readers before the drop, {} after",
        first.len(),
        left.len()
    );
    drop(held);
    let left = fewer_than(1);
    assert!(left.is_empty(), "no reader outlives its download: {left:?}");
    rt.shutdown(std::time::Duration::from_secs(5))
        .await
        .unwrap();
}
