//! Output categories from the command line: `--categories`, exec's
//! `NAME<TAB>RECORD` lines, `--output-dir`, `download --category`, and the
//! counts in `job show`.

mod common;

use common::*;

/// id,name,score rows; score = id * 7 % 100.
fn scores_csv(rows: u64) -> String {
    let mut text = String::from("id,name,score\n");
    for i in 1..=rows {
        text.push_str(&format!("{i},\"n, {i}\",{}\n", i * 7 % 100));
    }
    text
}

/// Score 50 and up to `valid`, 20 and up to `review`, the rest to
/// `rejected`; even ids also to `main`.
const SORT_CMD: &str = r#"awk -F, '{ if ($NF >= 50) print "valid\t" $0; else if ($NF >= 20) print "review\t" $0; else print "rejected\t" $0; if ($1 % 2 == 0) print "main\t" $0 }'"#;

fn expected(text: &str) -> [(String, String); 4] {
    let header = "id,name,score\n";
    let mut files = [
        ("main", String::from(header)),
        ("valid", String::from(header)),
        ("review", String::from(header)),
        ("rejected", String::from(header)),
    ];
    for row in text.lines().skip(1) {
        let id: u64 = row.split(',').next().unwrap().parse().unwrap();
        let score: u64 = row.rsplit(',').next().unwrap().parse().unwrap();
        let to = match score {
            50.. => 1,
            20.. => 2,
            _ => 3,
        };
        files[to].1.push_str(row);
        files[to].1.push('\n');
        if id.is_multiple_of(2) {
            files[0].1.push_str(row);
            files[0].1.push('\n');
        }
    }
    files.map(|(name, text)| (name.to_string(), text))
}

#[test]
fn exec_sorts_lines_into_categories_and_each_downloads_to_its_own_file_with_the_header() {
    let sb = Sandbox::new();
    let text = scores_csv(60);
    let input = sb.write("scores.csv", text.as_bytes());
    let dir = sb.path("out");
    sb.ok(&[
        "run",
        "--kind",
        "exec",
        "--cmd",
        SORT_CMD,
        "--categories",
        "valid,review,rejected",
        "--slice-size",
        "7",
        "--input",
        s(&input),
        "--output-dir",
        s(&dir),
    ]);
    let want = expected(&text);
    for (name, content) in &want {
        let file = match name.as_str() {
            "main" => dir.join("scores.csv"),
            other => dir.join(format!("scores.{other}.csv")),
        };
        assert_eq!(
            std::fs::read_to_string(&file).unwrap(),
            *content,
            "{} holds category {name}, header first",
            file.display()
        );
    }
    assert_eq!(
        std::fs::read_to_string(dir.join("scores.errors.jsonl")).unwrap(),
        ""
    );

    // One category on its own, byte for byte the same.
    let review = sb.path("review.csv");
    sb.ok(&[
        "download",
        "1",
        "--category",
        "review",
        "--output",
        s(&review),
    ]);
    assert_eq!(std::fs::read_to_string(&review).unwrap(), want[2].1);

    // The counts: every record processed, each category counted.
    let job = sb.json(&["job", "show", "1"]);
    let lines = |i: usize| want[i].1.lines().count() as u64 - 1;
    assert_eq!(job["records_in"], 60);
    assert_eq!(job["records_processed"], 60);
    assert_eq!(job["records_out"], lines(0));
    for (i, name) in [(1, "valid"), (2, "review"), (3, "rejected")] {
        assert_eq!(job["records_out_by_category"][name], lines(i), "{name}");
    }
    let shown = sb.ok(&["job", "show", "1"]);
    let shown = String::from_utf8_lossy(&shown.stdout);
    assert!(
        shown.contains(&format!(
            "categories    rejected {}, review {}, valid {}",
            lines(3),
            lines(2),
            lines(1)
        )),
        "{shown}"
    );
}

#[test]
fn exec_main_records_keep_any_tab_and_a_line_without_a_category_prefix_fails_its_slice() {
    let sb = Sandbox::new();
    let input = sb.write("in.txt", b"a\nb\n");
    let out = sb.path("out.txt");
    let cmd = r#"awk '{ print "valid\t" $0; print "main\tvalid\t" $0; print "main\tm" $0 }'"#;
    sb.ok(&[
        "run",
        "--kind",
        "exec",
        "--cmd",
        cmd,
        "--categories",
        "valid",
        "--input",
        s(&input),
        "--output",
        s(&out),
    ]);
    assert_eq!(
        std::fs::read_to_string(&out).unwrap(),
        "valid\ta\nma\nvalid\tb\nmb\n",
        "`main<TAB>` is taken off; what follows, a category's name included, is the record"
    );
    let valid = sb.path("valid.txt");
    sb.ok(&[
        "download",
        "1",
        "--category",
        "valid",
        "--output",
        s(&valid),
    ]);
    assert_eq!(std::fs::read_to_string(&valid).unwrap(), "a\nb\n");

    // A line with no prefix fails its slice, saying which line.
    let cmd = r#"awk '{ print "valid\t" $0; print $0 }'"#;
    let out = sb.expect(
        3,
        &[
            "run",
            "--kind",
            "exec",
            "--cmd",
            cmd,
            "--categories",
            "valid",
            "--input",
            s(&input),
            "--output",
            s(&sb.path("o2.txt")),
        ],
    );
    let said = format!("{}{}", stdout(&out), stderr(&out));
    let job = sb.json(&["job", "show", "2"]);
    let why = job["errors"].to_string();
    assert!(
        why.contains("line 2 of the command's output has no category prefix"),
        "{why} {said}"
    );
}

#[test]
fn a_bad_category_name_is_refused_before_anything_is_stored() {
    let sb = Sandbox::new();
    let input = sb.write("in.txt", b"a\n");
    for bad in ["Review", "main", "a b", &"x".repeat(33)] {
        let out = sb.expect(
            2,
            &[
                "run",
                "--kind",
                "copy",
                "--categories",
                bad,
                "--input",
                s(&input),
            ],
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("a-z, 0-9, `_` and `-`"), "{bad}: {err}");
    }
    assert!(!sb.data().exists(), "no data directory was created");
}

#[test]
fn download_of_a_category_the_job_lacks_names_the_ones_it_has() {
    let sb = Sandbox::new();
    let input = sb.write("in.txt", b"a\n");
    sb.ok(&[
        "run",
        "--kind",
        "copy",
        "--categories",
        "valid",
        "--input",
        s(&input),
        "--output",
        s(&sb.path("out.txt")),
    ]);
    let out = sb.expect(
        1,
        &[
            "download",
            "1",
            "--category",
            "review",
            "--output",
            s(&sb.path("r.txt")),
        ],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("job 1 has no category \"review\"; its categories are main, errors, valid"),
        "{err}"
    );
}

#[test]
fn each_category_file_gets_the_header_and_columns_of_the_output_columns() {
    let sb = Sandbox::new();
    let input = sb.write("in.csv", b"id,name,score\n1,a,70\n2,b,10\n");
    let dir = sb.path("out");
    sb.ok(&[
        "run",
        "--kind",
        "exec",
        "--cmd",
        SORT_CMD,
        "--categories",
        "valid,review,rejected",
        "--output-columns",
        "score,id",
        "--input",
        s(&input),
        "--output-dir",
        s(&dir),
    ]);
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap();
    assert_eq!(read("in.csv"), "score,id\n10,2\n");
    assert_eq!(read("in.valid.csv"), "score,id\n70,1\n");
    assert_eq!(read("in.review.csv"), "score,id\n");
    assert_eq!(read("in.rejected.csv"), "score,id\n10,2\n");
}

#[test]
fn the_errors_file_named_twice_is_a_usage_error() {
    let sb = Sandbox::new();
    let out = sb.expect(
        2,
        &[
            "download",
            "1",
            "--category",
            "errors",
            "--output",
            s(&sb.path("a.jsonl")),
            "--errors",
            s(&sb.path("b.jsonl")),
        ],
    );
    assert!(stderr(&out).contains("give one"), "{}", stderr(&out));
}

/// Member `a.review.txt`'s main file is member `a.txt`'s `review` file:
/// the later job is refused, the earlier file is not written over.
#[test]
fn zip_members_whose_files_meet_never_write_over_each_other() {
    let sb = Sandbox::new();
    let zip = zip_of(&[("a.txt", b"x\n", true), ("a.review.txt", b"y\n", true)]);
    let input = sb.write("in.zip", &zip);
    let dir = sb.path("out");
    let cmd = r#"awk '{ print "review\t" $0; print "main\t" $0 }'"#;
    let out = sb.run(&[
        "run",
        "--kind",
        "exec",
        "--cmd",
        cmd,
        "--categories",
        "review",
        "--input",
        s(&input),
        "--output-dir",
        s(&dir),
    ]);
    assert_ne!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stderr(&out).contains("already wrote"), "{}", stderr(&out));
    // a.txt's review file holds a.txt's record, not a.review.txt's main one.
    let review = std::fs::read_to_string(dir.join("a.review.txt")).unwrap();
    assert_eq!(review, "x\n");
}
