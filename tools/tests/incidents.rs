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
