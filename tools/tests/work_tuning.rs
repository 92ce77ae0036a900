//! `booster work`'s scheduling flags (issue 17): `--max-lease-batch` and the
//! reserved lane (`--reserve N --reserve-priority P`).

mod common;

use common::*;

#[test]
fn a_reserved_lane_runs_urgent_and_ordinary_jobs_and_must_leave_a_worker() {
    let sb = Sandbox::new();
    let input = sb.write("in.txt", numbered_lines(500).as_bytes());
    let ordinary = job_id(&sb.json(&["submit", "--kind", "copy", "--input", s(&input)]));
    let urgent = job_id(&sb.json(&[
        "submit",
        "--kind",
        "copy",
        "--priority",
        "1",
        "--input",
        s(&input),
    ]));

    let refused = sb.expect(
        2,
        &["work", "--until-idle", "--workers", "1", "--reserve", "1"],
    );
    let said = stderr(&refused);
    assert!(
        said.contains("--reserve 1 leaves none of the 1") && said.contains("reserve fewer"),
        "{said}"
    );
    assert_eq!(
        sb.json(&["job", "show", &ordinary.to_string()])["state"],
        "queued"
    );

    sb.ok(&[
        "-q",
        "work",
        "--until-idle",
        "--workers",
        "2",
        "--reserve",
        "1",
        "--reserve-priority",
        "5",
        "--max-lease-batch",
        "1",
    ]);
    for id in [ordinary, urgent] {
        let out = sb.path(&format!("o{id}.txt"));
        sb.ok(&["download", &id.to_string(), "--output", s(&out)]);
        assert_eq!(std::fs::read_to_string(&out).unwrap(), numbered_lines(500));
    }
    let usage = sb.expect(2, &["work", "--reserve-priority", "5"]);
    assert!(stderr(&usage).contains("--reserve"), "{}", stderr(&usage));
}
