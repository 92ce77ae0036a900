//! `serve` says what recovery did, as every other command does (issue 10):
//! a torn tail it cut is logged on stderr with segment, offset and bytes.

mod common;

use std::io::BufRead;
use std::process::Stdio;
use std::time::Duration;

use common::*;

#[test]
fn serve_logs_the_torn_tail_that_recovery_cut() {
    let sb = Sandbox::new();
    sb.copy_lines(50);
    let (_, len) = tear_last_segment(&sb, 300);

    let mut server = sb
        .cmd(&["serve", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(server.stderr.take().unwrap()).lines();
    let mut seen = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        let banner = line.contains("dashboard and API on");
        seen.push(line);
        if banner {
            break;
        }
    }
    // SAFETY: kill(2) with a pid we spawned and have not waited for.
    let rc = unsafe { libc::kill(server.id() as libc::pid_t, libc::SIGTERM) };
    assert_eq!(rc, 0);
    for _ in 0..1500 {
        if server.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = server.kill();
    let cut = seen
        .iter()
        .find(|l| l.contains("recovery cut a torn tail"))
        .unwrap_or_else(|| panic!("serve did not log the cut: {seen:?}"));
    // The cut starts at the end of the last whole batch (the seal footer
    // goes with the garbage) and runs to the end of the file.
    let number_after = |tag: &str| -> u64 {
        let rest = &cut[cut.find(tag).unwrap_or_else(|| panic!("{cut}")) + tag.len()..];
        rest.split(|c: char| !c.is_ascii_digit())
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    let (offset, bytes) = (number_after("at offset "), number_after(", "));
    assert!(offset < len, "{cut}");
    assert_eq!(offset + bytes, len + 300, "{cut}");
}
