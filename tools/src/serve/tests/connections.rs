//! Connection limits and timeouts: idle clients are dropped and cannot stop
//! work; event streams and API requests draw from separate pools.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use super::TestServer;
use crate::serve::ConnectionLimits;

fn limited(max_connections: usize, max_event_streams: usize) -> TestServer {
    TestServer::start_configured(|_, opts| {
        opts.limits = ConnectionLimits {
            max_connections,
            max_event_streams,
            header_read_timeout: Duration::from_millis(200),
            idle_timeout: Duration::from_secs(5),
        };
    })
}

fn addr(t: &TestServer) -> String {
    t.url.trim_start_matches("http://").to_string()
}

/// Opens an event stream on a raw connection; returns it and the status line.
fn open_event_stream(t: &TestServer) -> (TcpStream, String) {
    let mut conn = TcpStream::connect(addr(t)).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        conn,
        "GET /api/events HTTP/1.1\r\nHost: {}\r\nAccept: text/event-stream\r\n\r\n",
        addr(t)
    )
    .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n") {
        assert_eq!(conn.read(&mut byte).unwrap(), 1, "the server answered");
        head.push(byte[0]);
    }
    (conn, String::from_utf8_lossy(&head).trim().to_string())
}

#[test]
fn many_idle_connections_are_dropped_and_a_job_is_still_written() {
    let t = limited(4, 2);
    let idle: Vec<TcpStream> = (0..24)
        .map(|_| TcpStream::connect(addr(&t)).unwrap())
        .collect();
    let id = t.job_with_records("after the idle ones", 250);
    let job = t.client().job(id).unwrap();
    assert_eq!(job.records_in, 250);
    for mut conn in idle {
        // Generous bound on a hang; the server drops them after 200 ms.
        conn.set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let mut buf = [0u8; 64];
        let n = conn.read(&mut buf).unwrap_or(0);
        assert_eq!(n, 0, "an idle connection is closed without an answer");
    }
}

#[test]
fn event_streams_have_their_own_limit_and_leave_the_api_its_connections() {
    // One API connection, two event streams: both streams open, a third is
    // refused, and the API still answers while the two stay open.
    let t = limited(1, 2);
    let (_a, status_a) = open_event_stream(&t);
    let (_b, status_b) = open_event_stream(&t);
    assert!(
        status_a.contains(" 200 ") && status_b.contains(" 200 "),
        "{status_a} / {status_b}"
    );
    let (_c, status_c) = open_event_stream(&t);
    assert!(status_c.contains(" 503 "), "{status_c}");
    let (status, body) = t.get("/api/jobs");
    assert_eq!(status, 200, "{body}");
}
