//! Hostile input files through `booster run`: malformed CSV (unbalanced
//! quotes, stray bytes, invalid UTF-8, ragged rows), a 100 MB single line,
//! empty files, binary junk, junk behind a .gz/.zst name, bad JSON Lines.
//! Each gives record errors or a clear message, never a crash, and no line
//! is silently dropped: every id in the input ends in the output or in the
//! errors.

use std::path::Path;

use booster_tests::cli::{assert_no_crash, describe, Sandbox};
use booster_tests::rng::{seed, Rng};
use serde_json::Value;

/// `booster --json run ARGS --input INPUT --output OUT --errors ERR`:
/// Ok(job JSON) when the job ran (exit 0 or 3), Err(stderr) for a clear
/// refusal (exit 1 with a message). Anything else fails the test.
fn run(sb: &Sandbox, input: &Path, extra: &[&str]) -> Result<(Value, Vec<u8>, String), String> {
    let out_path = sb.path("out");
    let err_path = sb.path("errors.jsonl");
    let _ = std::fs::remove_file(&out_path);
    let _ = std::fs::remove_file(&err_path);
    let mut args = vec!["--json", "run"];
    args.extend_from_slice(extra);
    let (i, o, e) = (
        input.to_string_lossy(),
        out_path.to_string_lossy(),
        err_path.to_string_lossy(),
    );
    args.extend_from_slice(&["--input", &i, "--output", &o, "--errors", &e]);
    let out = sb.run(&args);
    assert_no_crash("booster run", &out);
    match out.status.code() {
        Some(0) | Some(3) => {
            let job: Value = serde_json::from_slice(&out.stdout)
                .unwrap_or_else(|err| panic!("{err}\n{}", describe(&out)));
            let output = std::fs::read(&out_path).unwrap_or_default();
            let errors = std::fs::read_to_string(&err_path).unwrap_or_default();
            let n = |f: &str| job[f].as_u64().unwrap_or_else(|| panic!("{f} in {job}"));
            assert_eq!(
                n("records_in"),
                n("records_out") + n("records_failed"),
                "counts reconcile: {job}"
            );
            assert_eq!(
                out.status.code() == Some(3),
                n("records_failed") > 0,
                "exit code vs failures: {job}"
            );
            Ok((job, output, errors))
        }
        Some(1) => {
            let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
            assert!(
                stderr.trim().len() > 10,
                "a refusal must say why\n{}",
                describe(&out)
            );
            Err(stderr)
        }
        _ => panic!("unexpected exit\n{}", describe(&out)),
    }
}

/// The records of an errors file as text: `record` as it is, and
/// `record_base64` (a record that is not UTF-8) decoded.
fn error_records(errors: &str) -> String {
    use base64::Engine as _;
    let mut text = String::new();
    for line in errors.lines() {
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        if let Some(r) = v["record"].as_str() {
            text.push_str(r);
        }
        if let Some(b) = v["record_base64"].as_str() {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(b)
                .unwrap_or_else(|e| panic!("record_base64 is not base64 ({e}): {line}"));
            text.push_str(&String::from_utf8_lossy(&bytes));
        }
        text.push('\n');
    }
    text
}

/// Every `id-NNNN` token of the input is in the output or in the errors.
fn assert_every_id_accounted(input: &[u8], output: &[u8], errors: &str) {
    let text = String::from_utf8_lossy(input);
    let out = String::from_utf8_lossy(output);
    let errors = &format!("{errors}\n{}", error_records(errors));
    for (pos, _) in text.match_indices("id-") {
        let token: String = text[pos..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
            .collect();
        assert!(
            out.contains(&token) || errors.contains(&token),
            "{token} is neither in the output nor in the errors (silently dropped)"
        );
    }
}

fn csv_run(sb: &Sandbox, name: &str, content: &[u8]) {
    let input = sb.write(name, content);
    for kind in [
        &["--kind", "copy"][..],
        &["--kind", "validate-customers", "--collect-errors"][..],
    ] {
        let mut extra = kind.to_vec();
        extra.extend_from_slice(&["--format", "csv"]);
        match run(sb, &input, &extra) {
            Ok((_, output, errors)) => assert_every_id_accounted(content, &output, &errors),
            Err(msg) => eprintln!("{name} {kind:?}: refused: {msg}"),
        }
    }
}

#[test]
fn malformed_csv_gives_record_errors_with_line_numbers_and_loses_no_line() {
    let sb = Sandbox::new();
    let good = |i: u32| format!("id-{i:04},Name {i},user{i}@example.com\n");
    let mut ragged = String::from("id,name,email\n");
    for i in 1..=50 {
        if i % 10 == 3 {
            ragged.push_str(&format!("id-{i:04},only-two-fields\n"));
        } else {
            ragged.push_str(&good(i));
        }
    }
    let input = sb.write("ragged.csv", ragged.as_bytes());
    let (job, _, errors) = run(
        &sb,
        &input,
        &["--kind", "validate-customers", "--collect-errors"],
    )
    .expect("ragged rows are record errors");
    assert_eq!(job["records_failed"], 5, "{job}");
    for i in [3, 13, 23, 33, 43] {
        let line = i + 1; // the header is line 1
        assert!(
            errors
                .lines()
                .any(|e| e.contains(&format!("id-{i:04}"))
                    && e.contains(&format!("\"line\":{line}"))),
            "row id-{i:04} must be an error naming line {line}: {errors}"
        );
    }
    let mut unbalanced = String::from("id,name,email\n");
    for i in 1..=30 {
        if i == 12 {
            unbalanced.push_str(&format!("id-{i:04},\"Name {i},user{i}@example.com\n"));
        } else {
            unbalanced.push_str(&good(i));
        }
    }
    csv_run(&sb, "unbalanced.csv", unbalanced.as_bytes());
    let mut stray = b"id,name,email\n".to_vec();
    for i in 1..=30u32 {
        let mut row = good(i).into_bytes();
        match i % 5 {
            0 => row.insert(5, 0),                              // NUL
            1 => row.insert(3, b'\r'),                          // lone CR
            2 => row.splice(8..8, [0xff, 0xfe]).for_each(drop), // invalid UTF-8
            3 => row.insert(9, b'"'),                           // quote inside an unquoted field
            _ => {}
        }
        stray.extend_from_slice(&row);
    }
    csv_run(&sb, "stray.csv", &stray);
}

#[test]
fn empty_and_header_only_files_are_handled_clearly() {
    let sb = Sandbox::new();
    for (name, content, format) in [
        ("empty.csv", &b""[..], "csv"),
        ("empty.txt", &b""[..], "lines"),
        ("empty.jsonl", &b""[..], "jsonl"),
        ("header.csv", &b"id,name,email\n"[..], "csv"),
        ("newlines.txt", &b"\n\n\n"[..], "lines"),
    ] {
        let input = sb.write(name, content);
        match run(&sb, &input, &["--kind", "copy", "--format", format]) {
            Ok((job, _, _)) => assert_eq!(job["state"], "completed", "{name}: {job}"),
            Err(msg) => eprintln!("{name}: refused: {msg}"),
        }
    }
}

#[test]
fn binary_junk_never_crashes_and_loses_nothing() {
    let seed = seed("binary_junk_never_crashes_and_loses_nothing");
    let mut rng = Rng::new(seed);
    let sb = Sandbox::new();
    let junk: Vec<u8> = (0..64 * 1024).map(|_| rng.next_u64() as u8).collect();
    for (name, format) in [
        ("junk.csv", "csv"),
        ("junk.txt", "lines"),
        ("junk.jsonl", "jsonl"),
        ("junk.gz", "lines"),
        ("junk.zst", "lines"),
    ] {
        let input = sb.write(name, &junk);
        match run(&sb, &input, &["--kind", "copy", "--format", format]) {
            Ok((job, output, _)) => {
                if format == "lines" && !name.ends_with(".gz") && !name.ends_with(".zst") {
                    // Lines of bytes come back byte for byte.
                    let lines_in = junk
                        .split(|b| *b == b'\n')
                        .filter(|l| !l.is_empty())
                        .count() as u64;
                    let n = job["records_in"].as_u64().unwrap();
                    assert!(
                        n >= lines_in.saturating_sub(1),
                        "{name}: {n} records from {lines_in} lines"
                    );
                    assert!(!output.is_empty(), "{name}: no output");
                }
            }
            Err(msg) => eprintln!("{name}: refused: {msg}"),
        }
    }
    let mut bad_json = String::new();
    for i in 1..=40 {
        if i % 7 == 0 {
            bad_json.push_str(&format!("{{\"id\": \"id-{i:04}\", broken\n"));
        } else {
            bad_json.push_str(&format!("{{\"id\": \"id-{i:04}\"}}\n"));
        }
    }
    let input = sb.write("bad.jsonl", bad_json.as_bytes());
    let (job, output, errors) = run(&sb, &input, &["--kind", "copy", "--collect-errors"])
        .expect("bad JSON lines are record errors");
    assert_eq!(job["records_failed"], 5, "{job}");
    assert!(errors.contains("\"line\":7"), "{errors}");
    assert_every_id_accounted(bad_json.as_bytes(), &output, &errors);
}

#[test]
fn a_100_mb_single_line_is_processed_whole_or_refused_clearly() {
    let sb = Sandbox::new();
    let len = 100 << 20;
    let mut line = Vec::with_capacity(len + 1);
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    while line.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        line.push(b'a' + (x % 26) as u8);
    }
    line[..8].copy_from_slice(b"id-0001,");
    line.push(b'\n');
    let input = sb.write("huge.txt", &line);
    match run(&sb, &input, &["--kind", "copy", "--format", "lines"]) {
        Ok((job, output, _)) if job["records_out"] == 1 => {
            assert_eq!(job["records_in"], 1, "{job}");
            assert_eq!(output.len(), line.len(), "the line comes back whole");
            assert!(output == line, "the line comes back unchanged");
        }
        Ok((job, output, _)) => {
            // Over the per-slice output cap: the slice fails on its own,
            // counted and explained, and nothing partial is written.
            assert_eq!(job["records_in"], 1, "{job}");
            assert_eq!(job["records_in_failed_slices"], 1, "{job}");
            assert!(output.is_empty(), "no partial output: {job}");
            assert!(
                job["errors"][0]["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("cap")),
                "the failure names the cap: {job}"
            );
        }
        Err(msg) => {
            let m = msg.to_lowercase();
            assert!(
                m.contains("line") || m.contains("record") || m.contains("large"),
                "{msg}"
            );
        }
    }
    drop(line);
    // The same as one CSV field.
    let mut csv = b"id,name,email\nid-0002,".to_vec();
    csv.extend(std::iter::repeat_n(b'n', len));
    csv.extend_from_slice(b",x@example.com\n");
    let input = sb.write("huge.csv", &csv);
    match run(
        &sb,
        &input,
        &["--kind", "validate-customers", "--collect-errors"],
    ) {
        Ok((job, output, errors)) => {
            assert_eq!(job["records_in"], 1, "{job}");
            assert_every_id_accounted(b"id-0002", &output, &errors);
        }
        Err(msg) => eprintln!("huge.csv: refused: {msg}"),
    }
}

#[test]
fn an_unclosed_quote_is_one_record_error_and_every_later_row_is_counted() {
    let sb = Sandbox::new();
    let rows = 3000;
    let mut csv = String::from("id,name,email\n");
    for i in 1..=rows {
        if i == 12 {
            csv.push_str(&format!("id-{i:04},\"Name {i},user{i}@example.com\n"));
        } else {
            csv.push_str(&format!("id-{i:04},Name {i},user{i}@example.com\n"));
        }
    }
    let input = sb.write("unclosed.csv", csv.as_bytes());
    // A small limit: the open quote hits it long before the end of the file.
    for extra in [&["--max-record-bytes", "1000"][..], &[][..]] {
        let mut args = vec!["--kind", "copy", "--format", "csv"];
        args.extend_from_slice(extra);
        let (job, output, errors) = run(&sb, &input, &args).expect("the job runs");
        assert_eq!(job["records_in"], rows, "{job}");
        assert_eq!(job["records_failed"], 1, "{job}");
        assert_eq!(job["records_out"], rows - 1, "{job}");
        let error: Value = serde_json::from_str(errors.lines().next().unwrap()).unwrap();
        assert_eq!(
            error["line"], 13,
            "the line where the quote opened: {error}"
        );
        assert!(
            error["message"]
                .as_str()
                .unwrap()
                .contains("parsing resumes at the next line"),
            "{error}"
        );
        let output = String::from_utf8_lossy(&output);
        assert!(output.contains("id-0013,Name 13") && output.contains(&format!("id-{rows:04}")));
    }
}
