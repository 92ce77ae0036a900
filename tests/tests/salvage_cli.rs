//! `booster salvage --into NEW_DIR` (issue 10): a store with a rotted frame
//! is copied batch by batch into a new one; what was lost is named; the
//! copy opens, lists every job, and a slice whose commit was lost runs again,
//! so every job's output comes back whole after `work`.

use booster_store::format::segment_paths;
use booster_store::format::{read_sealed_entries, FrameKind};
use booster_tests::cli::Sandbox;

fn lines(tag: &str, n: usize) -> String {
    (0..n).map(|i| format!("{tag} line {i}\n")).collect()
}

#[test]
fn salvage_copies_what_verifies_names_what_does_not_and_lost_commits_run_again() {
    let sb = Sandbox::encrypted();
    let (a, b) = (lines("alpha", 400), lines("beta", 400));
    let in_a = sb.write("a.txt", a.as_bytes());
    let in_b = sb.write("b.txt", b.as_bytes());
    for (input, out) in [(&in_a, "a.out"), (&in_b, "b.out")] {
        let out = sb.path(out);
        sb.ok(&[
            "-q",
            "run",
            "--kind",
            "copy",
            "--slice-size",
            "100",
            "--input",
            input.to_str().unwrap(),
            "--output",
            out.to_str().unwrap(),
        ]);
    }
    // Rot one output slice of job 2 (stream 1 = main output).
    let segs = segment_paths(&sb.data()).unwrap();
    let (seg, offset) = segs
        .iter()
        .find_map(|p| {
            let bytes = std::fs::read(p).unwrap();
            let entries = read_sealed_entries(&bytes).ok()?;
            entries
                .iter()
                .find(|e| {
                    e.header.kind == FrameKind::Slice
                        && e.header.key.owner == 2
                        && e.header.key.stream == 1
                })
                .map(|e| (p.clone(), e.offset))
        })
        .expect("job 2 has an output slice in a sealed segment");
    let mut bytes = std::fs::read(&seg).unwrap();
    bytes[offset as usize + 60] ^= 0x20;
    std::fs::write(&seg, &bytes).unwrap();
    sb.expect(4, &["verify"]);

    let saved = sb.path("saved");
    let out = sb.expect(4, &["salvage", "--into", saved.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("NOT SAVED") && text.contains("job 2"),
        "{text}"
    );
    // The damaged directory is left as it was.
    assert_eq!(std::fs::read(&seg).unwrap(), bytes);

    // Work on the copy: it opens, lists both jobs, and re-runs the slice
    // whose commit was lost.
    std::fs::rename(sb.data(), sb.path("damaged")).unwrap();
    std::fs::rename(&saved, sb.data()).unwrap();
    sb.ok(&["verify"]);
    assert_eq!(sb.jobs().len(), 2);
    assert_eq!(sb.job(1)["state"], "completed");
    sb.ok(&["-q", "work", "--until-idle"]);
    for (id, want) in [(1, &a), (2, &b)] {
        let out = sb.path(&format!("dl-{id}.txt"));
        sb.ok(&[
            "-q",
            "download",
            &id.to_string(),
            "--output",
            out.to_str().unwrap(),
        ]);
        assert_eq!(&std::fs::read_to_string(&out).unwrap(), want, "job {id}");
        assert_eq!(sb.job(id)["state"], "completed", "job {id}");
    }
}
