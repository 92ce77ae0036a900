//! submit, kill -9 of `work` midway, `work --until-idle`, download: every
//! record comes out exactly once, in order.

mod common;

use std::time::Duration;

use common::*;

#[test]
fn killed_worker_loses_and_duplicates_nothing() {
    let sb = Sandbox::new();
    let records = 200_000;
    let text = numbered_lines(records);
    let input = sb.write("in.txt", text.as_bytes());
    // A slow command, so the kill lands while slices are in flight.
    let job = sb.json(&[
        "submit",
        "--kind",
        "exec",
        "--cmd",
        "sleep 0.01; cat",
        "--slice-size",
        "500",
        "--input",
        s(&input),
    ]);
    let id = job_id(&job).to_string();
    for delay_ms in [300, 700] {
        let mut worker = sb
            .cmd(&["work", "--workers", "2"])
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        worker.kill().unwrap(); // SIGKILL
        worker.wait().unwrap();
    }
    // Each slice sleeps 10 ms, so two workers alive for 1 s in all cannot
    // have done more than 200 of the 400 slices: the kills landed midway.
    let midway = sb.json(&["job", "show", &id]);
    assert!(
        midway["records_out"].as_u64().unwrap() < records as u64,
        "{midway}"
    );
    sb.ok(&["work", "--until-idle"]);
    let done = sb.json(&["job", "show", &id]);
    assert_eq!(done["state"], "completed", "{done}");
    assert_eq!(done["records_out"], records as u64, "{done}");
    assert_eq!(done["records_failed"], 0, "{done}");
    let output = sb.path("out.txt");
    sb.ok(&["download", &id, "--output", s(&output)]);
    let got = std::fs::read_to_string(&output).unwrap();
    assert_eq!(got.lines().count(), records, "every record exactly once");
    assert!(got == text, "records in input order, none changed");
}
