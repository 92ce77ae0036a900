//! Exact round trips: a file through `run --kind copy`, `submit` + `work` +
//! `download`, and stdin comes back byte for byte, whatever lies between
//! its records (blank lines, CRLF or mixed endings, no final newline, a
//! BOM, whitespace-only JSON Lines lines), while records in = out + errors
//! stays exact and record errors keep their line numbers (a reader's
//! record error among blank lines: `run_formats.rs`).

mod common;

use common::*;

/// `run --kind copy` in slices of 2, then `download` of the same job.
#[test]
fn run_and_download_give_every_file_back_byte_for_byte() {
    for (name, content) in separator_files() {
        exact_round_trip(name, &content);
    }
}

#[test]
fn submit_work_and_download_give_every_file_back_byte_for_byte() {
    let sb = Sandbox::new();
    let mut jobs = Vec::new();
    for (name, content) in separator_files() {
        let input = sb.write(name, &content);
        let job = sb.json(&[
            "submit",
            "--kind",
            "copy",
            "--slice-size",
            "3",
            "--input",
            s(&input),
        ]);
        jobs.push((name, content, job_id(&job)));
    }
    sb.ok(&["work", "--until-idle"]);
    for (name, content, id) in jobs {
        let output = sb.path(&format!("out-{name}"));
        sb.ok(&["download", &id.to_string(), "--output", s(&output)]);
        assert_eq!(std::fs::read(&output).unwrap(), content, "{name}");
    }
}

/// stdin is not read before its job exists (no layout sniffed), yet every
/// separator is kept with its record.
#[test]
fn stdin_comes_back_byte_for_byte() {
    for (name, content) in separator_files() {
        let sb = Sandbox::new();
        let format = name.rsplit('.').next().unwrap();
        let format = if format == "txt" { "lines" } else { format };
        let output = sb.path(&format!("out-{name}"));
        let mut child = sb
            .cmd(&[
                "run",
                "--kind",
                "copy",
                "--format",
                format,
                "--input",
                "-",
                "--output",
                s(&output),
            ])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        {
            use std::io::Write;
            let mut stdin = child.stdin.take().unwrap();
            stdin.write_all(&content).unwrap();
        }
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{name}: {}", stderr(&out));
        assert_eq!(
            String::from_utf8_lossy(&std::fs::read(&output).unwrap()),
            String::from_utf8_lossy(&content),
            "stdin: {name}"
        );
    }
}

#[test]
fn validate_customers_and_exec_report_lines_counting_blank_lines() {
    let sb = Sandbox::new();
    let input = sb.write(
        "c.csv",
        b"id,name,email\n\n1,Ann,ann@example.com\n\n\n2,Bo,not-an-email\n3,Cy,cy@x.org\n",
    );
    let errors = sb.path("bad.jsonl");
    let output = sb.path("clean.csv");
    sb.expect(
        3,
        &[
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
    let text = std::fs::read_to_string(&errors).unwrap();
    let error: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
    assert_eq!(error["line"], 6, "{text}");
    assert_eq!(
        std::fs::read_to_string(&output).unwrap(),
        "id,name,email\n1,Ann,ann@example.com\n3,Cy,cy@x.org\n",
        "a slice with an error is not 1:1: its rows take the usual ending"
    );

    // exec: a failing slice's records go to errors with their own lines.
    let lines = sb.write("w.txt", b"a\n\nb\n");
    let errors = sb.path("exec-errors.jsonl");
    sb.expect(
        3,
        &[
            "run",
            "--kind",
            "exec",
            "--cmd",
            "exit 1",
            "--slice-size",
            "2",
            "--input",
            s(&lines),
            "--output",
            s(&sb.path("exec.txt")),
            "--errors",
            s(&errors),
            "--keep-partial",
        ],
    );
    let text = std::fs::read_to_string(&errors).unwrap();
    let lines: Vec<u64> = text
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["line"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(lines, vec![1, 2, 3], "{text}");
}
