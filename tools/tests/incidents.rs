//! `booster incidents` (issue 10): what recovery cut is kept in the
//! store's own log, so it outlives the stderr line of the open that cut it,
//! later opens, and compaction.

mod common;

use common::*;

#[test]
fn a_torn_tail_cut_by_a_listing_is_kept_as_an_incident_through_compaction() {
    let sb = Sandbox::new();
    let run = sb.copy_lines(50);
    let run: Vec<&str> = run.iter().map(String::as_str).collect();
    let none = sb.json(&["incidents"]);
    assert_eq!(none, serde_json::json!([]), "a clean store has none");
    let (last, len) = tear_last_segment(&sb, 300);

    // Any open cuts the tail: here a read-only listing. It says so...
    let listed = sb.ok(&["jobs"]);
    assert!(stderr(&listed).contains("recovery cut a torn tail"));
    // ...and the store keeps it, where the next command finds it.
    let check = |incidents: &serde_json::Value| {
        let all = incidents.as_array().unwrap();
        assert_eq!(all.len(), 1, "{incidents}");
        let i = &all[0];
        let file = last.file_name().unwrap().to_str().unwrap();
        assert_eq!(i["file"], file, "{i}");
        let offset = i["offset"].as_u64().unwrap();
        let bytes = i["kind"]["torn_tail"]["bytes"].as_u64().unwrap();
        assert!(offset < len && offset + bytes == len + 300, "{i}");
    };
    check(&sb.json(&["incidents"]));
    let text = stdout(&sb.ok(&["incidents"]));
    assert!(text.contains("torn tail cut: segment"), "{text}");

    // Later opens cut nothing more and log nothing twice; compaction keeps it.
    sb.ok(&["jobs"]);
    sb.ok(&["compact"]);
    sb.ok(&run);
    check(&sb.json(&["incidents"]));
}

/// Rot in a sealed output slice is found when it is read: the download
/// fails naming it, and from then on every listing marks the job damaged
/// (the read keeps an incident), in later processes too.
#[test]
fn a_job_whose_output_rotted_is_listed_as_damaged_once_a_read_found_it() {
    use booster_store::format::{read_sealed_entries, segment_paths, FrameKind};
    let sb = Sandbox::new();
    sb.copy_lines(30);
    sb.copy_lines(30);
    let newest = segment_paths(&sb.data()).unwrap().pop().unwrap();
    let mut bytes = std::fs::read(&newest).unwrap();
    let entry = read_sealed_entries(&bytes)
        .unwrap()
        .into_iter()
        .find(|e| {
            e.header.kind == FrameKind::Slice && e.header.key.owner == 2 && e.header.key.stream == 1
        })
        .expect("job 2's output slice");
    bytes[(entry.offset + 60) as usize] ^= 0x40;
    std::fs::write(&newest, &bytes).unwrap();

    assert!(
        !stdout(&sb.ok(&["jobs"])).contains("DAMAGED"),
        "not read yet"
    );
    sb.expect(4, &["download", "2", "--output", s(&sb.path("o2.txt"))]);
    let listed = stdout(&sb.ok(&["jobs"]));
    let line = listed
        .lines()
        .find(|l| l.trim_start().starts_with("2 "))
        .unwrap();
    assert!(
        line.contains("DAMAGED (1 range: `booster job show 2`)"),
        "{listed}"
    );
    let shown = stdout(&sb.ok(&["job", "show", "2"]));
    assert!(
        shown.contains(&format!("offsets {}", entry.offset)),
        "{shown}"
    );
    assert!(!listed
        .lines()
        .any(|l| l.trim_start().starts_with("1 ") && l.contains("DAMAGED")));
}
