//! The harness runs with transparent huge pages off, as the `booster`
//! binary does (issues 12 and 17: mimalloc's per-thread pages, kept
//! whole as 2 MiB pages, grew the sliced copy's RSS with the threads),
//! and every `sliced` line says so beside its memory figures.

mod common;

#[test]
fn a_sliced_run_says_it_ran_with_transparent_huge_pages_off() {
    let dir = tempfile::tempdir().unwrap();
    let mut args = vec!["sliced", "--child", "--lean", "--records", "2000"];
    args.extend(["--workers", "2", "--codec-threads", "2", "--dir", "."]);
    let text = common::run_harness(&args, dir.path());
    let lines: Vec<serde_json::Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert!(!lines.is_empty(), "the child printed its results: {text}");
    for line in &lines {
        assert_eq!(
            line["params"]["transparent_huge_pages_off"],
            serde_json::Value::Bool(true),
            "{line}"
        );
    }
}
