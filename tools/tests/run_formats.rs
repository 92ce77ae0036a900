//! `booster run` over every format and compression: the output comes back
//! exactly, malformed records become record errors with their line numbers.

mod common;

use std::io::Write;
use std::process::Stdio;

use common::*;

fn round_trip(name: &str, content: &[u8], extra: &[&str]) {
    let sb = Sandbox::new();
    let input = sb.path(name);
    write_compressed(&input, content);
    let output = sb.path(&format!("out-{name}"));
    let mut args = vec![
        "run",
        "--kind",
        "copy",
        "--slice-size",
        "7",
        "--input",
        s(&input),
        "--output",
        s(&output),
    ];
    args.extend_from_slice(extra);
    sb.ok(&args);
    assert_eq!(
        String::from_utf8_lossy(&read_decompressed(&output)),
        String::from_utf8_lossy(content),
        "{name}"
    );
}

#[test]
fn lines_round_trip_exactly_plain_gz_and_zst() {
    let text = numbered_lines(100);
    for name in ["in.txt", "in.txt.gz", "in.txt.zst"] {
        round_trip(name, text.as_bytes(), &[]);
    }
}

#[test]
fn csv_round_trips_with_header_and_quoted_fields() {
    let mut text = String::from("id,name,note\n");
    for i in 1..=50 {
        text.push_str(&format!(
            "{i},\"Smith, J{i}\",\"said \"\"hi\"\"\nthen left\"\n"
        ));
    }
    for name in ["in.csv", "in.csv.gz", "in.csv.zst"] {
        round_trip(name, text.as_bytes(), &[]);
    }
}

#[test]
fn jsonl_round_trips_plain_gz_and_zst() {
    let text: String = (1..=60)
        .map(|i| format!("{{\"n\":{i},\"s\":\"x,y\"}}\n"))
        .collect();
    for name in ["in.jsonl", "in.jsonl.gz", "in.jsonl.zst"] {
        round_trip(name, text.as_bytes(), &[]);
    }
}

#[test]
fn bz2_and_xz_round_trip_in_and_out() {
    let text = numbered_lines(80);
    for name in ["in.txt.bz2", "in.txt.xz"] {
        round_trip(name, text.as_bytes(), &[]);
    }
    let mut csv = String::from("id,name\n");
    for i in 1..=40 {
        csv.push_str(&format!("{i},\"n, {i}\"\n"));
    }
    round_trip("in.csv.bz2", csv.as_bytes(), &[]);
    round_trip("in.csv.xz", csv.as_bytes(), &[]);
}

#[test]
fn compression_is_recognised_by_magic_bytes_whatever_the_name() {
    let sb = Sandbox::new();
    let text = numbered_lines(20);
    for codec in ["gz", "zst", "bz2", "xz"] {
        let packed = sb.path(&format!("packed.{codec}"));
        write_compressed(&packed, text.as_bytes());
        let misnamed = sb.path(&format!("misnamed-{codec}.txt"));
        std::fs::rename(&packed, &misnamed).unwrap();
        let output = sb.path(&format!("out-{codec}.txt"));
        sb.ok(&[
            "run",
            "--kind",
            "copy",
            "--input",
            s(&misnamed),
            "--output",
            s(&output),
        ]);
        assert_eq!(std::fs::read_to_string(&output).unwrap(), text, "{codec}");
    }
}

#[test]
fn gzip_piped_into_stdin_is_decompressed() {
    let sb = Sandbox::new();
    let text = numbered_lines(25);
    let packed = sb.path("p.gz");
    write_compressed(&packed, text.as_bytes());
    let mut child = sb
        .cmd(&["run", "--kind", "copy", "--input", "-", "--output", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let bytes = std::fs::read(&packed).unwrap();
    child.stdin.take().unwrap().write_all(&bytes).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), text);
}

#[test]
fn an_unknown_compression_is_refused_instead_of_read_as_text() {
    let sb = Sandbox::new();
    let input = sb.write("data.csv", b"Rar!\x1a\x07\x00junk");
    refused(&sb, &input, "o.csv", &[], "is a rar archive");
    assert!(!sb.path("o.csv").exists(), "nothing written");
    let junk_zip = sb.write("junk.zip", b"PK\x03\x04\x14\x00\x00\x00junk");
    refused(
        &sb,
        &junk_zip,
        "o.csv",
        &[],
        "is not a readable zip archive",
    );
    let lz4 = sb.write("data.txt", &[0x04, 0x22, 0x4d, 0x18, 0x64, 0x40, 0xa7]);
    refused(&sb, &lz4, "o.txt", &[], "lz4");
    let fake_gz = sb.write("plain.txt.gz", b"hello\n");
    refused(&sb, &fake_gz, "o2.txt", &[], "is named .gz but is not gzip");
}

/// `run --kind copy` of `input` with `extra` exits 1 saying `expected`,
/// and writes no `output`.
fn refused(sb: &Sandbox, input: &std::path::Path, output: &str, extra: &[&str], expected: &str) {
    let out_path = sb.path(output);
    let mut args = vec![
        "run",
        "--kind",
        "copy",
        "--input",
        s(input),
        "--output",
        s(&out_path),
    ];
    args.extend_from_slice(extra);
    let out = sb.expect(1, &args);
    assert!(stderr(&out).contains(expected), "{}", stderr(&out));
    assert!(!out_path.exists(), "nothing written for {expected}");
}

#[test]
fn csv_comes_back_byte_for_byte_with_its_line_endings() {
    let cases: [(&str, &[u8]); 5] = [
        ("crlf.csv", b"id,note\r\n1,\"two\r\nlines\"\r\n2,b\r\n"),
        ("cr.csv", b"id,note\r1,a\r2,b\r"),
        ("leading-blank.csv", b"\n\nid,note\n1,a\n"),
        ("no-final-newline.csv", b"id,note\n1,a\n2,b"),
        ("crlf.csv.gz", b"id,note\r\n1,a\r\n2,b\r\n"),
    ];
    for (name, content) in cases {
        exact_round_trip(name, content);
    }
}

#[test]
fn lines_and_json_lines_come_back_byte_for_byte_with_their_line_endings() {
    let cases: [(&str, &[u8]); 5] = [
        ("cr.txt", b"one\rtwo\rthree\r"),
        ("mixed.txt", b"one\r\ntwo\nthree\r\n"),
        ("no-final-newline.txt", b"one\ntwo"),
        ("crlf.jsonl", b"{\"a\":1}\r\n{\"a\":2}\r\n"),
        ("no-final-newline.jsonl", b"{\"a\":1}\n{\"a\":2}"),
    ];
    for (name, content) in cases {
        exact_round_trip(name, content);
    }
}

#[test]
fn a_json_array_is_read_element_by_element_and_written_back_as_an_array() {
    let sb = Sandbox::new();
    let values: Vec<serde_json::Value> = (1..=25)
        .map(|i| serde_json::json!({"id": i, "name": format!("n, {i}"), "tags": [i, "x"]}))
        .collect();
    let pretty = serde_json::to_string_pretty(&values).unwrap();
    let input = sb.write("in.json", pretty.as_bytes());
    let output = sb.path("out.json");
    let job = sb.json(&[
        "run",
        "--kind",
        "copy",
        "--slice-size",
        "4",
        "--input",
        s(&input),
        "--output",
        s(&output),
    ]);
    assert_eq!(job["records_in"], 25, "{job}");
    let back: Vec<serde_json::Value> =
        serde_json::from_slice(&std::fs::read(&output).unwrap()).unwrap();
    assert_eq!(back, values);
}

#[test]
fn a_bad_json_array_element_is_a_record_error_on_its_line() {
    let sb = Sandbox::new();
    let input = sb.write("in.json", b"[\n{\"id\": 1},\n{\"id\": },\n{\"id\": 3}\n]\n");
    let output = sb.path("out.json");
    let errors = sb.path("errors.jsonl");
    let out = sb.expect(
        3,
        &[
            "--json",
            "run",
            "--kind",
            "copy",
            "--input",
            s(&input),
            "--output",
            s(&output),
            "--errors",
            s(&errors),
        ],
    );
    let job: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (job["records_in"].as_u64(), job["records_out"].as_u64()),
        (Some(3), Some(2))
    );
    assert_eq!(job["records_failed"], 1);
    let errors_text = std::fs::read_to_string(&errors).unwrap();
    assert!(errors_text.contains("\"line\":3"), "{errors_text}");
    let back: serde_json::Value = serde_json::from_slice(&std::fs::read(&output).unwrap()).unwrap();
    assert_eq!(back, serde_json::json!([{"id": 1}, {"id": 3}]));
}

#[test]
fn a_json_file_of_one_value_per_line_is_read_as_json_lines() {
    exact_round_trip("lines.json", b"{\"a\":1}\n{\"a\":2}\n");
}

#[test]
fn psv_and_tsv_come_back_byte_for_byte() {
    exact_round_trip("in.psv", b"id|note\n1|\"a|b\"\n2|\"two\nlines\"\n3|c\n");
    exact_round_trip("in.tsv", b"id\tnote\r\n1\t\"a\tb\"\r\n2\tc\r\n");
    exact_round_trip("in.tsv.bz2", b"id\tnote\n1\tx\n");
}

/// `run --json` with `args`, exit 3 expected; the job, output and errors.
fn run_with_errors(
    sb: &Sandbox,
    name: &str,
    content: &[u8],
    args: &[&str],
) -> (serde_json::Value, String, String) {
    let input = sb.write(name, content);
    let output = sb.path(&format!("out-{name}"));
    let errors = sb.path(&format!("errors-{name}.jsonl"));
    let mut all = vec![
        "--json",
        "run",
        "--kind",
        "copy",
        "--collect-errors",
        "--input",
        s(&input),
        "--output",
        s(&output),
        "--errors",
        s(&errors),
    ];
    all.extend_from_slice(args);
    let out = sb.expect(3, &all);
    let job: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let records_in = job["records_in"].as_u64().unwrap();
    let (records_out, failed) = (
        job["records_out"].as_u64().unwrap(),
        job["records_failed"].as_u64().unwrap(),
    );
    assert_eq!(
        records_in,
        records_out + failed,
        "records in = out + errors: {job}"
    );
    (
        job,
        std::fs::read_to_string(&output).unwrap(),
        std::fs::read_to_string(&errors).unwrap(),
    )
}

/// A record error leaves its own line (and the line break after it) out of
/// the output and nothing else; blank lines count in every line number.
#[test]
fn among_blank_lines_a_bad_row_keeps_its_line_number_and_only_it_is_left_out() {
    let sb = Sandbox::new();
    let content = b"id,v\n\n1,a\n\n1,2,3\n\n2,b\n\n";
    let (job, output, errors) = run_with_errors(&sb, "c.csv", content, &["--slice-size", "2"]);
    assert_eq!(job["records_failed"], 1, "{job}");
    assert_eq!(output, "id,v\n\n1,a\n\n2,b\n\n");
    let error: serde_json::Value = serde_json::from_str(errors.trim()).unwrap();
    assert_eq!(error["line"], 5, "{errors}");
}

#[test]
fn a_delimiter_option_reads_fields_and_a_ragged_row_is_a_record_error() {
    let sb = Sandbox::new();
    let (job, output, errors) = run_with_errors(
        &sb,
        "in.txt",
        b"id;name\n1;\"a;b\"\n2;b;extra\n3;c\n",
        &["--format", "csv", "--delimiter", ";"],
    );
    assert_eq!(job["records_failed"], 1, "{job}");
    assert_eq!(output, "id;name\n1;\"a;b\"\n3;c\n");
    assert!(
        errors.contains("\"line\":3") && errors.contains("3 fields"),
        "{errors}"
    );
}

#[test]
fn column_rules_reject_rows_with_their_line_numbers_and_shape_the_output() {
    let sb = Sandbox::new();
    let text = b"id,junk,email\n1,x,a@b.io\n2,y,\n3,z,c@d.io\n";
    let (job, output, errors) = run_with_errors(
        &sb,
        "in.csv",
        text,
        &[
            "--required-columns",
            "email",
            "--allowed-columns",
            "id,email",
            "--skip-unknown",
            "--output-columns",
            "email,id",
        ],
    );
    assert_eq!(job["records_failed"], 1, "{job}");
    assert!(
        errors.contains("\"line\":3") && errors.contains("required column `email` is empty"),
        "{errors}"
    );
    assert_eq!(output, "email,id\na@b.io,1\nc@d.io,3\n");
    let renamed = sb.write("r.csv", b"a,b\n1,2\n");
    let out = sb.path("r-out.csv");
    sb.ok(&[
        "run",
        "--kind",
        "copy",
        "--input",
        s(&renamed),
        "--output",
        s(&out),
        "--columns",
        "x,y",
    ]);
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "x,y\n1,2\n");
}

#[test]
fn a_header_that_breaks_a_column_rule_is_refused_before_anything_is_stored() {
    let sb = Sandbox::new();
    let input = sb.write("in.csv", b"id,name\n1,a\n");
    refused(
        &sb,
        &input,
        "o.csv",
        &["--required-columns", "email"],
        "no `email` column",
    );
    refused(
        &sb,
        &input,
        "o.csv",
        &["--allowed-columns", "id"],
        "name; pass --skip-unknown",
    );
    assert!(
        !sb.data().exists(),
        "refused before the data directory is made"
    );
}

#[test]
fn a_latin1_file_is_stored_as_utf8_and_comes_back_byte_for_byte() {
    let sb = Sandbox::new();
    let latin1 = b"id,name\r\n1,Jos\xe9\r\n2,M\xfcller\r\n";
    let input = sb.write("l1.csv", latin1);
    let utf8 = sb.path("utf8.csv");
    let job = sb.json(&[
        "run",
        "--kind",
        "copy",
        "--encoding",
        "latin1",
        "--input",
        s(&input),
        "--output",
        s(&utf8),
    ]);
    assert_eq!(
        std::fs::read_to_string(&utf8).unwrap(),
        "id,name\r\n1,José\r\n2,Müller\r\n"
    );
    let back = sb.path("back.csv.gz");
    sb.ok(&[
        "download",
        &job_id(&job).to_string(),
        "--output",
        s(&back),
        "--output-encoding",
        "input",
    ]);
    assert_eq!(read_decompressed(&back), latin1);
}

#[test]
fn a_utf16_file_with_a_bom_is_detected_and_comes_back_byte_for_byte() {
    let sb = Sandbox::new();
    let text = "id\tname\r\n1\tZoë\r\n2\t日本\r\n";
    for (name, bom, le) in [
        ("le.tsv", [0xFFu8, 0xFE], true),
        ("be.tsv", [0xFE, 0xFF], false),
    ] {
        let mut bytes = bom.to_vec();
        bytes.extend(text.encode_utf16().flat_map(|u| {
            if le {
                u.to_le_bytes()
            } else {
                u.to_be_bytes()
            }
        }));
        let input = sb.write(name, &bytes);
        let utf8 = sb.path(&format!("utf8-{name}"));
        let job = sb.json(&[
            "run",
            "--kind",
            "copy",
            "--input",
            s(&input),
            "--output",
            s(&utf8),
        ]);
        assert_eq!(job["records_in"], 2, "{job}");
        assert_eq!(std::fs::read_to_string(&utf8).unwrap(), text, "{name}");
        let back = sb.path(&format!("back-{name}"));
        sb.ok(&[
            "download",
            &job_id(&job).to_string(),
            "--output",
            s(&back),
            "--output-encoding",
            "input",
        ]);
        assert_eq!(std::fs::read(&back).unwrap(), bytes, "{name}");
    }
}

#[test]
fn an_undecodable_line_is_a_record_error_with_its_line_number() {
    let sb = Sandbox::new();
    let (job, output, errors) =
        run_with_errors(&sb, "in.csv", b"id,name\n1,ok\n2,Jos\xe9\n3,fine\n", &[]);
    assert_eq!(job["records_failed"], 1, "{job}");
    assert_eq!(output, "id,name\n1,ok\n3,fine\n");
    assert!(
        errors.contains("\"line\":3") && errors.contains("--encoding"),
        "{errors}"
    );
    let (job, output, errors) =
        run_with_errors(&sb, "in.txt", b"\xEF\xBB\xBFfirst\nbad \xff\nlast\n", &[]);
    assert_eq!(job["records_failed"], 1, "{job}");
    assert_eq!(output, "\u{feff}first\nlast\n", "UTF-8 keeps its BOM");
    assert!(
        errors.contains("\"line\":2") && errors.contains("cannot be decoded as UTF-8"),
        "{errors}"
    );
}

#[test]
fn a_fixed_width_short_line_is_a_record_error_and_the_rest_comes_back_exactly() {
    let sb = Sandbox::new();
    let layout = sb.write(
        "layout.json",
        br#"{"fields": [{"name": "id", "start": 1, "width": 3}, {"name": "amount", "start": 4, "width": 6}]}"#,
    );
    let (job, output, errors) = run_with_errors(
        &sb,
        "bank.txt",
        "001  1.50\n002 12\n003 99.00\n004Zoë   \n".as_bytes(),
        &["--format", "fixed", "--layout", s(&layout)],
    );
    assert_eq!(job["records_failed"], 1, "{job}");
    assert_eq!(output, "001  1.50\n003 99.00\n004Zoë   \n");
    assert!(
        errors.contains("\"line\":2") && errors.contains("needs 9"),
        "{errors}"
    );
    let input = sb.write("x.txt", b"abc\n");
    refused(&sb, &input, "o", &["--format", "fixed"], "needs --layout");
    let bad = sb.write("bad.json", br#"{"fields": [{"name": "a", "start": 1, "width": 3}, {"name": "b", "start": 2, "width": 3}]}"#);
    let layout_arg = ["--format", "fixed", "--layout", s(&bad)];
    refused(&sb, &input, "o", &layout_arg, "overlap");
}

#[test]
fn a_zip_with_several_members_is_read_by_member_or_all_with_concat() {
    let sb = Sandbox::new();
    let (a, b) = (numbered_lines(30), "beta\ngamma\n".to_string());
    let csv = b"id,name\r\n1,\"x, y\"\r\n";
    let archive = sb.write(
        "in.zip",
        &zip_of(&[
            ("a.txt", a.as_bytes(), true),
            ("b.txt", b.as_bytes(), false),
            ("c.csv", csv, true),
        ]),
    );
    let one = sb.path("b-out.txt");
    sb.ok(&[
        "run",
        "--kind",
        "copy",
        "--input",
        s(&archive),
        "--member",
        "b.txt",
        "--output",
        s(&one),
    ]);
    assert_eq!(std::fs::read_to_string(&one).unwrap(), b);
    let c = sb.path("c-out.csv");
    sb.ok(&[
        "run",
        "--kind",
        "copy",
        "--input",
        s(&archive),
        "--member",
        "c.csv",
        "--output",
        s(&c),
    ]);
    assert_eq!(
        std::fs::read(&c).unwrap(),
        csv,
        "the member's name says CSV; bytes come back exactly"
    );
    let two = sb.write(
        "two.zip",
        &zip_of(&[("a.txt", a.as_bytes(), true), ("b.txt", b.as_bytes(), true)]),
    );
    let all = sb.path("all.txt");
    let job = sb.json(&[
        "run",
        "--kind",
        "copy",
        "--input",
        s(&two),
        "--concat",
        "--output",
        s(&all),
    ]);
    assert_eq!(job["records_in"], 32, "{job}");
    assert_eq!(std::fs::read_to_string(&all).unwrap(), format!("{a}{b}"));
}

#[test]
fn a_zip_with_three_members_runs_a_job_per_member_into_the_output_dir() {
    let sb = Sandbox::new();
    let (a, b) = (numbered_lines(30), "beta\ngamma\n".to_string());
    let csv = b"id,name\r\n1,\"x, y\"\r\n2,z\r\n";
    let archive = sb.write(
        "in.zip",
        &zip_of(&[
            ("a.txt", a.as_bytes(), true),
            ("b.txt", b.as_bytes(), false),
            ("c.csv", csv, true),
        ]),
    );
    // Several outputs cannot go to one file: a usage error, nothing stored.
    let out = sb.expect(
        2,
        &[
            "run",
            "--kind",
            "copy",
            "--input",
            s(&archive),
            "--output",
            s(&sb.path("o")),
        ],
    );
    assert!(
        stderr(&out).contains("holds 3 files (a.txt, b.txt, c.csv): `run` makes a job per member")
            && stderr(&out).contains("--output-dir DIR"),
        "{}",
        stderr(&out)
    );
    assert!(!sb.data().exists() && !sb.path("o").exists());

    let dir = sb.path("out");
    let jobs = sb.json(&[
        "run",
        "--kind",
        "copy",
        "--slice-size",
        "7",
        "--input",
        s(&archive),
        "--output-dir",
        s(&dir),
    ]);
    let jobs = jobs.as_array().expect("--json prints one object per job");
    let summary: Vec<(u64, &str, u64)> = jobs
        .iter()
        .map(|j| {
            (
                j["id"].as_u64().unwrap(),
                j["properties"]["member"].as_str().unwrap(),
                j["output_records"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![(1, "a.txt", 30), (2, "b.txt", 2), (3, "c.csv", 2)]
    );
    assert_eq!(jobs[2]["description"], "copy in.zip:c.csv");
    assert_eq!(std::fs::read_to_string(dir.join("a.txt")).unwrap(), a);
    assert_eq!(std::fs::read_to_string(dir.join("b.txt")).unwrap(), b);
    assert_eq!(
        std::fs::read(dir.join("c.csv")).unwrap(),
        csv,
        "each member is its own job in its own format, back byte for byte"
    );
    for stem in ["a", "b", "c"] {
        let errors = dir.join(format!("{stem}.errors.jsonl"));
        assert_eq!(std::fs::read_to_string(errors).unwrap(), "", "{stem}");
    }

    // `submit` makes the same three jobs; a download names its files after the member.
    let ids = sb.ok(&["-q", "submit", "--kind", "copy", "--input", s(&archive)]);
    assert_eq!(String::from_utf8_lossy(&ids.stdout), "4\n5\n6\n");
    sb.ok(&["work", "--until-idle"]);
    let again = sb.path("again");
    sb.ok(&["download", "6", "--output-dir", s(&again)]);
    assert_eq!(std::fs::read(again.join("c.csv")).unwrap(), csv);
}

/// Sets every uncompressed-size field of a one-member zip to `size`.
fn lie_about_size(mut zip: Vec<u8>, size: u32) -> Vec<u8> {
    for (signature, offset) in [(b"PK\x03\x04", 22), (b"PK\x01\x02", 24)] {
        let at = zip.windows(4).position(|w| w == signature).unwrap();
        zip[at + offset..at + offset + 4].copy_from_slice(&size.to_le_bytes());
    }
    zip
}

#[test]
fn hostile_zips_are_refused_clearly_and_nothing_is_written_outside() {
    let sb = Sandbox::new();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "escape.zip",
            zip_of(&[("../evil.txt", b"x\n", false)]),
            "would escape its directory",
        ),
        (
            "bomb.zip",
            zip_of(&[("zeros.txt", &vec![b'0'; 40 << 20], true)]),
            "over 200 to 1",
        ),
        (
            "huge.zip",
            lie_about_size(zip_of(&[("h.txt", b"hello\n", false)]), u32::MAX),
            "over 200 to 1",
        ),
        (
            "short.zip",
            lie_about_size(zip_of(&[("s.txt", b"hello\nworld\n", false)]), 3),
            "inflates past its declared 3 bytes",
        ),
    ];
    for (name, bytes, expected) in cases {
        let archive = sb.write(name, &bytes);
        let out = sb.run(&[
            "run",
            "--kind",
            "copy",
            "--input",
            s(&archive),
            "--output",
            s(&sb.path("o.txt")),
        ]);
        assert_ne!(out.status.code(), Some(0), "{name}");
        assert!(stderr(&out).contains(expected), "{name}: {}", stderr(&out));
        assert!(!sb.path("o.txt").exists(), "{name}: no output");
    }
    assert!(!sb.dir.path().parent().unwrap().join("evil.txt").exists());
}

/// A minimal xlsx: sheet "Data" with a header, numbers, an error cell and
/// dates (style 1 is the date format 14).
fn tiny_xlsx() -> Vec<u8> {
    const MAIN: &str = "http://schemas.openxmlformats.org/spreadsheetml/2006/main";
    const RELS: &str = "http://schemas.openxmlformats.org/package/2006/relationships";
    const DOC: &str = "http://schemas.openxmlformats.org/officeDocument/2006/relationships";
    let types = r#"<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/><Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/><Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/><Override PartName="/xl/styles.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.styles+xml"/></Types>"#;
    let root_rels = format!(
        r#"<Relationships xmlns="{RELS}"><Relationship Id="rId1" Type="{DOC}/officeDocument" Target="xl/workbook.xml"/></Relationships>"#
    );
    let workbook = format!(
        r#"<workbook xmlns="{MAIN}" xmlns:r="{DOC}"><sheets><sheet name="Data" sheetId="1" r:id="rId1"/></sheets></workbook>"#
    );
    let book_rels = format!(
        r#"<Relationships xmlns="{RELS}"><Relationship Id="rId1" Type="{DOC}/worksheet" Target="worksheets/sheet1.xml"/><Relationship Id="rId2" Type="{DOC}/styles" Target="styles.xml"/></Relationships>"#
    );
    let styles = format!(
        r#"<styleSheet xmlns="{MAIN}"><cellXfs count="2"><xf numFmtId="0"/><xf numFmtId="14" applyNumberFormat="1"/></cellXfs></styleSheet>"#
    );
    let text = |r: &str, t: &str| format!(r#"<c r="{r}" t="inlineStr"><is><t>{t}</t></is></c>"#);
    let sheet = format!(
        r#"<worksheet xmlns="{MAIN}"><dimension ref="A1:C4"/><sheetData><row r="1">{}{}{}</row><row r="2"><c r="A2"><v>1</v></c><c r="B2"><v>12.5</v></c><c r="C2" s="1"><v>45352</v></c></row><row r="3"><c r="A3"><v>2</v></c><c r="B3" t="e"><v>#DIV/0!</v></c><c r="C3" s="1"><v>45353</v></c></row><row r="4"><c r="A4"><v>3</v></c><c r="B4"><v>1000000</v></c><c r="C4" s="1"><v>45354.5</v></c></row></sheetData></worksheet>"#,
        text("A1", "id"),
        text("B1", "amount"),
        text("C1", "day")
    );
    zip_of(&[
        ("[Content_Types].xml", types.as_bytes(), true),
        ("_rels/.rels", root_rels.as_bytes(), true),
        ("xl/workbook.xml", workbook.as_bytes(), true),
        ("xl/_rels/workbook.xml.rels", book_rels.as_bytes(), true),
        ("xl/styles.xml", styles.as_bytes(), true),
        ("xl/worksheets/sheet1.xml", sheet.as_bytes(), true),
    ])
}

#[test]
fn an_xlsx_sheet_is_read_as_csv_with_dates_numbers_and_error_cells() {
    let sb = Sandbox::new();
    let book = tiny_xlsx();
    let (job, output, errors) = run_with_errors(&sb, "book.xlsx", &book, &["--sheet", "Data"]);
    assert_eq!(job["records_failed"], 1, "{job}");
    assert_eq!(
        output,
        "id,amount,day\n1,12.5,2024-03-01\n3,1000000,2024-03-03T12:00:00\n"
    );
    assert!(
        errors.contains("\"line\":3") && errors.contains("#DIV/0!"),
        "{errors}"
    );
    let input = sb.write("big.xlsx", &book);
    refused(
        &sb,
        &input,
        "o.csv",
        &["--max-sheet-cells", "5"],
        "has 12 cells, over --max-sheet-cells 5",
    );
    refused(
        &sb,
        &input,
        "o.csv",
        &["--sheet", "Nope"],
        "has no sheet \"Nope\"; it has Data",
    );
}

#[test]
fn format_flag_overrides_the_extension() {
    round_trip("in.data", b"a,b\n1,2\n3,4\n", &["--format", "csv"]);
}

#[test]
fn stdin_to_stdout() {
    let sb = Sandbox::new();
    let text = numbered_lines(30);
    let mut child = sb
        .cmd(&["run", "--kind", "copy", "--input", "-", "--output", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), text);
}

#[test]
fn malformed_csv_lines_become_record_errors_with_line_numbers() {
    let sb = Sandbox::new();
    let input = sb.write("in.csv", b"a,b\n1,2\n3,4,5\n6,7\n\"8\",9,10\n11,12\n");
    let output = sb.path("out.csv");
    let errors = sb.path("errors.jsonl");
    let out = sb.expect(
        3,
        &[
            "--json",
            "run",
            "--kind",
            "copy",
            "--input",
            s(&input),
            "--output",
            s(&output),
            "--errors",
            s(&errors),
        ],
    );
    let job: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(job["records_in"], 5);
    assert_eq!(job["records_out"], 3);
    assert_eq!(job["records_failed"], 2);
    assert_eq!(
        std::fs::read_to_string(&output).unwrap(),
        "a,b\n1,2\n6,7\n11,12\n"
    );
    let errors_text = std::fs::read_to_string(&errors).unwrap();
    assert_eq!(errors_text.lines().count(), 2, "{errors_text}");
    assert!(errors_text.contains("3,4,5"), "{errors_text}");

    let shown = sb.json(&["job", "show", &job_id(&job).to_string()]);
    let lines: Vec<u64> = shown["errors"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["samples"].as_array().unwrap().iter())
        .filter_map(|s| s["line"].as_u64())
        .collect();
    let mut lines = lines;
    lines.sort();
    assert_eq!(lines, vec![3, 5], "{shown}");
}

#[test]
fn malformed_json_lines_become_record_errors() {
    let sb = Sandbox::new();
    let input = sb.write("in.jsonl", b"{\"a\":1}\n{\"a\":\n{\"a\":3}\n");
    let output = sb.path("out.jsonl");
    let out = sb.expect(
        3,
        &[
            "--json",
            "run",
            "--kind",
            "copy",
            "--input",
            s(&input),
            "--output",
            s(&output),
        ],
    );
    let job: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (job["records_in"].as_u64(), job["records_failed"].as_u64()),
        (Some(3), Some(1))
    );
    assert_eq!(
        std::fs::read_to_string(&output).unwrap(),
        "{\"a\":1}\n{\"a\":3}\n"
    );
}

#[test]
fn validate_customers_normalises_and_collects_bad_rows() {
    let sb = Sandbox::new();
    let input = sb.write(
        "c.csv",
        b"id,name,email\n1, Ann ,ANN@Example.com\n2,Bo,not-an-email\n3,,c@d.io\n4,Di,di@x.org\n",
    );
    let output = sb.path("clean.csv");
    let errors = sb.path("bad.jsonl");
    let out = sb.expect(
        3,
        &[
            "--json",
            "run",
            "--kind",
            "validate-customers",
            "--collect-errors",
            "--input",
            s(&input),
            "--output",
            s(&output),
            "--errors",
            s(&errors),
        ],
    );
    let job: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(job["state"], "completed");
    assert_eq!(
        (job["records_out"].as_u64(), job["records_failed"].as_u64()),
        (Some(2), Some(2))
    );
    assert_eq!(
        std::fs::read_to_string(&output).unwrap(),
        "id,name,email\n1,Ann,ann@example.com\n4,Di,di@x.org\n"
    );
    let errors_text = std::fs::read_to_string(&errors).unwrap();
    assert!(errors_text.contains("bad email address"), "{errors_text}");
    assert!(
        errors_text.contains("missing required column name"),
        "{errors_text}"
    );
}

#[test]
fn exec_pipes_records_through_a_command() {
    let sb = Sandbox::new();
    let input = sb.write("w.txt", b"alpha\nbeta\ngamma\n");
    let output = sb.path("up.txt");
    sb.ok(&[
        "run",
        "--kind",
        "exec",
        "--cmd",
        "tr a-z A-Z",
        "--slice-size",
        "2",
        "--input",
        s(&input),
        "--output",
        s(&output),
    ]);
    assert_eq!(
        std::fs::read_to_string(&output).unwrap(),
        "ALPHA\nBETA\nGAMMA\n"
    );
}

#[test]
fn exec_failing_command_fails_its_slices_with_exit_3() {
    let sb = Sandbox::new();
    let input = sb.write("w.txt", b"a\nb\n");
    let output = sb.path("o.txt");
    let out = sb.expect(
        3,
        &[
            "--json",
            "run",
            "--kind",
            "exec",
            "--cmd",
            "echo broken >&2; exit 9",
            "--input",
            s(&input),
            "--output",
            s(&output),
        ],
    );
    let job: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(job["records_failed"], 2, "{job}");
    assert!(
        job.to_string().contains("broken"),
        "the command's stderr is kept: {job}"
    );
}

#[test]
fn run_then_download_gives_the_same_bytes() {
    let sb = Sandbox::new();
    let mut text = String::from("k,v\n");
    for i in 0..2000 {
        text.push_str(&format!("{i},\"v {i}, with comma\"\n"));
    }
    let input = sb.write("in.csv", text.as_bytes());
    let first = sb.path("first.csv.zst");
    let job = sb.json(&[
        "run",
        "--kind",
        "copy",
        "--slice-size",
        "100",
        "--input",
        s(&input),
        "--output",
        s(&first),
    ]);
    let again = sb.path("again.csv.gz");
    sb.ok(&["download", &job_id(&job).to_string(), "--output", s(&again)]);
    assert_eq!(read_decompressed(&first), text.as_bytes());
    assert_eq!(read_decompressed(&again), text.as_bytes());
}
