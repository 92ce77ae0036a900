//! Helpers for tests that run the built `booster` binary.
#![allow(dead_code)]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub const BIN: &str = env!("CARGO_BIN_EXE_booster");

/// A temporary directory with a data directory inside.
pub struct Sandbox {
    pub dir: tempfile::TempDir,
}

impl Sandbox {
    pub fn new() -> Sandbox {
        Sandbox {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn data(&self) -> PathBuf {
        self.path("data")
    }

    /// `booster --data <sandbox>/data ARGS`, with no BOOSTER_* from the caller.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.env_remove("BOOSTER_DATA")
            .env_remove("BOOSTER_KEY_FILE")
            .env_remove("BOOSTER_SERVER")
            .env_remove("BOOSTER_TOKEN_FILE")
            .arg("--data")
            .arg(self.data())
            .args(args)
            .stdin(Stdio::null());
        cmd
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    /// Runs and asserts the exit code, showing stderr when it differs.
    pub fn expect(&self, code: i32, args: &[&str]) -> Output {
        let out = self.run(args);
        assert_eq!(
            out.status.code(),
            Some(code),
            "booster {args:?}\nstdout: {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    pub fn ok(&self, args: &[&str]) -> Output {
        self.expect(0, args)
    }

    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let out = self.ok(&all);
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
    }

    /// `run --kind copy` of `n` numbered lines (`in.txt` to `out.txt`):
    /// a finished job in the data directory. Returns its `run` arguments.
    #[allow(dead_code)]
    pub fn copy_lines(&self, n: usize) -> Vec<String> {
        let input = self.write("in.txt", numbered_lines(n).as_bytes());
        let args: Vec<String> = ["-q", "run", "--kind", "copy", "--input"]
            .iter()
            .map(|a| a.to_string())
            .chain([s(&input).to_string(), "--output".into()])
            .chain([s(&self.path("out.txt")).to_string()])
            .collect();
        self.ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
        args
    }

    pub fn write(&self, name: &str, content: &[u8]) -> PathBuf {
        let path = self.path(name);
        std::fs::write(&path, content).unwrap();
        path
    }
}

pub fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Reads a file, decompressing `.gz` / `.zst` / `.bz2` / `.xz`.
pub fn read_decompressed(path: &Path) -> Vec<u8> {
    let file = std::fs::File::open(path).unwrap();
    let mut out = Vec::new();
    match path.extension().and_then(|e| e.to_str()) {
        Some("gz") => {
            flate2::read::MultiGzDecoder::new(file)
                .read_to_end(&mut out)
                .unwrap();
        }
        Some("zst") => {
            zstd::Decoder::new(file)
                .unwrap()
                .read_to_end(&mut out)
                .unwrap();
        }
        Some("bz2") => {
            bzip2::read::MultiBzDecoder::new(file)
                .read_to_end(&mut out)
                .unwrap();
        }
        Some("xz") => {
            liblzma::read::XzDecoder::new_multi_decoder(file)
                .read_to_end(&mut out)
                .unwrap();
        }
        _ => {
            std::io::BufReader::new(file).read_to_end(&mut out).unwrap();
        }
    }
    out
}

/// Writes `content` compressed by `path`'s extension.
pub fn write_compressed(path: &Path, content: &[u8]) {
    use std::io::Write;
    let file = std::fs::File::create(path).unwrap();
    match path.extension().and_then(|e| e.to_str()) {
        Some("gz") => {
            let mut w = flate2::write::GzEncoder::new(file, flate2::Compression::default());
            w.write_all(content).unwrap();
            w.finish().unwrap();
        }
        Some("zst") => {
            let mut w = zstd::Encoder::new(file, 3).unwrap();
            w.write_all(content).unwrap();
            w.finish().unwrap();
        }
        Some("bz2") => {
            let mut w = bzip2::write::BzEncoder::new(file, bzip2::Compression::default());
            w.write_all(content).unwrap();
            w.finish().unwrap();
        }
        Some("xz") => {
            let mut w = liblzma::write::XzEncoder::new(file, 6);
            w.write_all(content).unwrap();
            w.finish().unwrap();
        }
        _ => std::fs::write(path, content).unwrap(),
    }
}

/// `n` lines of distinct text.
pub fn numbered_lines(n: usize) -> String {
    (1..=n)
        .map(|i| format!("record number {i} of {n}\n"))
        .collect()
}

pub fn job_id(value: &serde_json::Value) -> u64 {
    value["id"]
        .as_u64()
        .unwrap_or_else(|| panic!("no id in {value}"))
}

/// A zip of `(name, bytes, deflated)` members.
pub fn zip_of(members: &[(&str, &[u8], bool)]) -> Vec<u8> {
    use std::io::Write;
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, bytes, deflated) in members {
        let method = if *deflated {
            zip::CompressionMethod::Deflated
        } else {
            zip::CompressionMethod::Stored
        };
        let options = zip::write::SimpleFileOptions::default().compression_method(method);
        w.start_file(*name, options).unwrap();
        w.write_all(bytes).unwrap();
    }
    w.finish().unwrap().into_inner()
}

/// Appends `n` bytes of garbage to the newest segment file (a torn write
/// that was never acknowledged); returns the file and its length before.
#[allow(dead_code)]
pub fn tear_last_segment(sb: &Sandbox, n: usize) -> (PathBuf, u64) {
    let last = booster_store::format::segment_paths(&sb.data())
        .unwrap()
        .pop()
        .unwrap();
    let len = std::fs::metadata(&last).unwrap().len();
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&last)
        .unwrap();
    std::io::Write::write_all(&mut file, &vec![0x5a; n]).unwrap();
    (last, len)
}

/// Real-world-shaped files whose records are separated by more than one
/// line ending: blank lines, CRLF or mixed endings, no final newline, a
/// BOM, whitespace-only JSON Lines lines, quoted fields with newlines.
pub fn separator_files() -> Vec<(&'static str, Vec<u8>)> {
    let mut bom = vec![0xEF, 0xBB, 0xBF];
    bom.extend_from_slice("id,name\n1,Zoë\n\n2,Ana".as_bytes());
    vec![
        (
            "blank-lines.csv",
            b"id,name,note\r\n\r\n1,Ann,\"two\r\nlines\"\r\n\r\n\r\n2,Bob,x\r\n3,Cy,y\r\n\r\n"
                .to_vec(),
        ),
        ("bom-no-final-newline.csv", bom),
        (
            "mixed-endings.csv",
            b"id,v\r\n1,a\n2,b\r\n\n3,c\r\n".to_vec(),
        ),
        (
            "blank-lines-lf.csv",
            b"\nid,v\n1,a\n\n2,\"b\n\nc\"\n\n\n3,d\n".to_vec(),
        ),
        ("cr-only.csv", b"id,v\r\r1,a\r\r2,b\r".to_vec()),
        ("blank-line.tsv", b"id\tv\n1\ta\n\n2\tb\n".to_vec()),
        (
            "events.jsonl",
            b"{\"a\":1}\n\n{\"a\":2}\n   \n{\"a\":3}\n\n\n".to_vec(),
        ),
        (
            "crlf-no-final-newline.jsonl",
            b"\r\n{\"a\":1}\r\n\r\n{\"a\":2}\r\n\t\r\n{\"a\":3}".to_vec(),
        ),
        ("notes.txt", b"a\n\n  \nb\r\n\n".to_vec()),
    ]
}

/// `run --kind copy` (in slices of 2) then `download` of `content`, with
/// `global` options first (`--server URL`): both give back exactly
/// `content` (compressed as `name` says), and separators are no records.
pub fn exact_round_trip_with(global: &[&str], name: &str, content: &[u8]) {
    let sb = Sandbox::new();
    let input = sb.path(name);
    write_compressed(&input, content);
    let output = sb.path(&format!("out-{name}"));
    let mut run = global.to_vec();
    run.extend(["run", "--kind", "copy", "--slice-size", "2"]);
    run.extend(["--input", s(&input), "--output", s(&output)]);
    let job = sb.json(&run);
    assert_eq!(
        String::from_utf8_lossy(&read_decompressed(&output)),
        String::from_utf8_lossy(content),
        "run {global:?}: {name}"
    );
    assert_eq!(
        job["records_in"], job["records_out"],
        "{name}: every record is written once: {job}"
    );
    let again = sb.path(&format!("again-{name}"));
    let id = job_id(&job).to_string();
    let mut download = global.to_vec();
    download.extend(["download", &id, "--output", s(&again)]);
    sb.ok(&download);
    assert_eq!(
        read_decompressed(&again),
        content,
        "download {global:?}: {name}"
    );
}

/// [`exact_round_trip_with`] in this process's own data directory.
pub fn exact_round_trip(name: &str, content: &[u8]) {
    exact_round_trip_with(&[], name, content);
}

/// `booster --data <sandbox>/data serve --listen 127.0.0.1:0 ARGS`, running
/// until dropped (`booster_tests::cli::Serving`: its URL, its log).
pub fn serve(sb: &Sandbox, args: &[&str]) -> booster_tests::cli::Serving {
    serve_on(sb, "127.0.0.1:0", args)
}

/// [`serve`] listening on `listen` (a restarted node keeps its port).
pub fn serve_on(sb: &Sandbox, listen: &str, args: &[&str]) -> booster_tests::cli::Serving {
    let mut all = vec!["serve", "--listen", listen];
    all.extend_from_slice(args);
    booster_tests::cli::Serving::spawn(sb.cmd(&all))
}
