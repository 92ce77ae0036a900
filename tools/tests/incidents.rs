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

/// The first finding: a segment file moved out of a store. Every
/// command names it, the jobs whose records survive are listed and
/// download whole, the job it held is listed as lost (never "not found"),
/// compaction refuses to make the loss permanent, and putting the file
/// back makes the store whole again.
#[test]
fn a_missing_segment_is_named_by_every_command_and_the_rest_stays_usable() {
    use booster_store::format::segment_paths;
    let sb = Sandbox::new();
    sb.copy_lines(30);
    let after_first = segment_paths(&sb.data()).unwrap();
    sb.copy_lines(40);
    let victim = segment_paths(&sb.data())
        .unwrap()
        .into_iter()
        .find(|p| !after_first.contains(p))
        .expect("the second run wrote a segment of its own");
    sb.copy_lines(50);
    let saved = std::fs::read(&victim).unwrap();
    std::fs::remove_file(&victim).unwrap();
    let file = victim.file_name().unwrap().to_str().unwrap();

    let verify = sb.expect(4, &["verify"]);
    let said = format!("{}{}", stdout(&verify), stderr(&verify));
    assert!(said.contains(file) && said.contains("missing"), "{said}");

    let listed = sb.ok(&["jobs"]);
    assert!(
        stderr(&listed).contains(file),
        "every open names it: {}",
        stderr(&listed)
    );
    let jobs = sb.json(&["jobs"]);
    let state = |id: u64| {
        jobs.as_array()
            .unwrap()
            .iter()
            .find(|j| j["id"] == id)
            .map(|j| j["state"].as_str().unwrap().to_string())
    };
    assert_eq!(state(1).as_deref(), Some("completed"), "{jobs}");
    assert_eq!(
        state(2).as_deref(),
        Some("failed"),
        "listed as lost: {jobs}"
    );
    assert_eq!(state(3).as_deref(), Some("completed"), "{jobs}");
    let shown = stdout(&sb.ok(&["job", "show", "2"]));
    assert!(shown.contains("lost") && shown.contains(file), "{shown}");

    for (id, n) in [(1, 30), (3, 50)] {
        let out = sb.path(&format!("o{id}.txt"));
        sb.ok(&["download", &id.to_string(), "--output", s(&out)]);
        assert_eq!(std::fs::read_to_string(&out).unwrap(), numbered_lines(n));
    }
    let refused = sb.run(&["compact"]);
    assert_ne!(
        refused.status.code(),
        Some(0),
        "compaction would erase the loss"
    );
    assert!(stderr(&refused).contains("damage"), "{}", stderr(&refused));
    assert!(!victim.exists());

    // A new job could take the id of one the missing file held (restoring
    // it would then mix the two): submits wait for the restore.
    let refused = sb.expect(
        4,
        &["submit", "--kind", "copy", "--input", s(&sb.path("in.txt"))],
    );
    assert!(
        stderr(&refused).contains("submits are refused"),
        "{}",
        stderr(&refused)
    );

    std::fs::write(&victim, saved).unwrap();
    let jobs = sb.json(&["jobs"]);
    assert!(
        jobs.as_array()
            .unwrap()
            .iter()
            .all(|j| j["state"] == "completed"),
        "{jobs}"
    );
    let out = sb.path("o2.txt");
    sb.ok(&["download", "2", "--output", s(&out)]);
    assert_eq!(std::fs::read_to_string(&out).unwrap(), numbered_lines(40));
    sb.ok(&["verify"]);
    let next = job_id(&sb.json(&["submit", "--kind", "copy", "--input", s(&sb.path("in.txt"))]));
    assert_eq!(next, 4, "ids go on after the restored ones");
}

/// The third finding: the last segment cut to 60% turned an
/// acknowledged, completed upload into "upload interrupted". The cut is
/// below the recorded watermark, so it is acknowledged data lost: every
/// open names it, nothing is cut further, and the job whose records went
/// is failed for what happened, never as an interrupted upload.
#[test]
fn acknowledged_batches_cut_off_are_named_and_never_called_an_interrupted_upload() {
    use booster_store::format::segment_paths;
    let sb = Sandbox::new();
    let input = sb.write("big.txt", numbered_lines(60_000).as_bytes());
    let run = |out: &str| {
        sb.ok(&[
            "-q",
            "run",
            "--kind",
            "copy",
            "--input",
            s(&input),
            "--output",
            s(&sb.path(out)),
        ]);
    };
    run("o1.txt");
    run("o2.txt");
    let last = segment_paths(&sb.data()).unwrap().pop().unwrap();
    let len = std::fs::metadata(&last).unwrap().len();
    let file = std::fs::OpenOptions::new().write(true).open(&last).unwrap();
    file.set_len(len * 6 / 10).unwrap();
    drop(file);

    let worked = sb.run(&["work", "--until-idle"]);
    let said = stderr(&worked);
    assert!(said.contains("acknowledged data lost"), "{said}");
    assert_eq!(
        std::fs::metadata(&last).unwrap().len(),
        len * 6 / 10,
        "nothing cut"
    );
    let shown = stdout(&sb.ok(&["job", "show", "2"]));
    assert!(!shown.contains("upload interrupted"), "{shown}");
    // Where the cut fell decides how the job names it: a range of only
    // meta records in its failure ("acknowledged data lost"); a slice of
    // its in the lost range under "damaged" (which a later open, once the
    // cut segment is no longer the last, words as a frame running past
    // its end). Either way the job names the loss.
    assert!(
        shown.contains("acknowledged data lost") || shown.contains("damaged"),
        "{shown}"
    );
    let out = sb.path("again1.txt");
    sb.ok(&["download", "1", "--output", s(&out)]);
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&input).unwrap());
}
