//! The JSON client against a fake node: a local TCP server that answers
//! what a real `booster serve` answers only when something goes wrong (an
//! event stream that ends early or lags, a node that takes a request and
//! never answers, one that drops the connection after reading it).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::mpsc;
use std::time::Duration;

use booster_client::http::{Client, Connect, Error, Event};
use booster_runtime::{JobSpec, JobState};

/// What the fake node does with one request.
enum Answer {
    /// Writes this (status line, headers and body), then closes.
    Close(String),
    /// Writes this, then holds the connection open without a word more.
    Hold(String),
    /// Reads the request, then closes without answering.
    Drop,
    /// Never reads or answers, and holds the connection open.
    Stall,
}

/// A fake node on a loopback port, answering each request by `answer`
/// (given the request line, e.g. `GET /api/jobs/7 HTTP/1.1`).
fn fake_node(answer: impl Fn(&str) -> Answer + Send + 'static) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    let url = format!("http://{}", listener.local_addr().expect("its address"));
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            if matches!(answer(""), Answer::Stall) {
                held.push(stream);
                continue;
            }
            let line = read_request(&stream);
            match answer(&line) {
                Answer::Close(text) => {
                    let _ = stream.write_all(text.as_bytes());
                }
                Answer::Hold(text) => {
                    let _ = stream.write_all(text.as_bytes());
                    held.push(stream);
                }
                Answer::Drop | Answer::Stall => {}
            }
        }
    });
    url
}

/// The request line of the request on `stream`, its headers and body read.
fn read_request(stream: &TcpStream) -> String {
    let mut reader = BufReader::new(stream);
    let mut request_line = String::new();
    let _ = reader.read_line(&mut request_line);
    let mut body_bytes = 0usize;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).unwrap_or(0) == 0 || header == "\r\n" {
            break;
        }
        if let Some(n) = header.to_ascii_lowercase().strip_prefix("content-length:") {
            body_bytes = n.trim().parse().unwrap_or(0);
        }
    }
    let _ = reader.take(body_bytes as u64).read_to_end(&mut Vec::new());
    request_line.trim_end().to_string()
}

/// A JSON answer with a length: the connection closes after it.
fn json_answer(body: &str) -> Answer {
    Answer::Close(format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    ))
}

/// The head of an event stream (its body ends when the connection does)
/// and `events`, already SSE text.
fn event_stream(events: &str) -> String {
    format!(
        "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n{events}"
    )
}

/// One SSE `job` event of job 7 in `state`.
fn job_event(state: &str) -> String {
    format!(
        "event: job\ndata: {{\"job\":7,\"state\":\"{state}\",\"slices_done\":1,\"slices_total\":2,\"records_out\":5,\"percent\":50.0,\"what\":\"slice_done\"}}\n\n"
    )
}

/// `GET /api/jobs/7`'s answer: job 7 in `state`.
fn job_view(state: &str) -> String {
    format!(
        r#"{{"id":7,"kind":"copy","description":"","state":"{state}","priority":50,"max_workers":null,
"created_at_ms":1,"started_at_ms":null,"completed_at_ms":null,"run_at_ms":null,"expires_at_ms":null,
"upload_complete":true,"slices_total":2,"slices_queued":0,"slices_running":0,"slices_done":2,
"slices_failed":0,"records_in":10,"records_out":10,"records_errors":0,"records_in_failed_slices":0,
"records_failed":0,"percent":100.0,"records_per_s":0.0,"eta_s":null,"leases":[],"errors":[],
"failure_reason":null,"result":null,"attempts":1,"properties":{{}}}}"#
    )
}

/// A fake node whose event stream of job 7 is `events` (then closed or
/// held open) and whose job 7 is in `state`.
fn node_with(events: String, hold: bool, state: &'static str) -> String {
    fake_node(move |line| {
        if line.starts_with("GET /api/events") {
            let head = event_stream(&events);
            if hold {
                Answer::Hold(head)
            } else {
                Answer::Close(head)
            }
        } else if line.starts_with("GET /api/jobs/7 ") {
            json_answer(&job_view(state))
        } else {
            Answer::Close("HTTP/1.1 500 Unexpected\r\ncontent-length: 0\r\n\r\n".to_string())
        }
    })
}

fn client(url: &str, timeout: Option<Duration>) -> Client {
    Client::new(&Connect {
        server: url.to_string(),
        timeout,
        ..Default::default()
    })
    .expect("a client")
}

/// `call` run on its own thread; what it gave, or a panic if it has not
/// returned within a minute (the defect these tests catch is a hang).
fn within_a_minute<T: Send + 'static>(call: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(call());
    });
    rx.recv_timeout(Duration::from_secs(60))
        .expect("the call returned (it hung for a minute)")
}

/// Watches job 7 to its end, recording the events.
fn watch_all(node: Client) -> (Result<(), Error>, Vec<Event>) {
    let mut events = Vec::new();
    let result = node.watch(7, |e| {
        events.push(e.clone());
        true
    });
    (result, events)
}

fn last_state(events: &[Event]) -> Option<JobState> {
    events.iter().rev().find_map(|e| match e {
        Event::Job(e) => Some(e.state),
        Event::Lagged { .. } => None,
    })
}

#[test]
fn a_watch_whose_stream_ends_before_the_job_finished_is_broke_off() {
    let url = node_with(job_event("running"), false, "running");
    let (result, events) = within_a_minute(move || watch_all(client(&url, None)));
    let err = result.expect_err("a stream that ended while the job runs is no end of the job");
    assert!(
        matches!(&err, Error::BrokeOff { what, .. } if *what == "the event stream"),
        "{err:?}"
    );
    assert_eq!(last_state(&events), Some(JobState::Running), "{events:?}");
}

#[test]
fn a_watch_whose_stream_ends_after_the_job_finished_ends_with_its_final_state() {
    let url = node_with(job_event("running"), false, "completed");
    let (result, events) = within_a_minute(move || watch_all(client(&url, None)));
    result.expect("the job finished: the watch ends well");
    assert!(
        matches!(events.last(), Some(Event::Job(e)) if e.state == JobState::Completed && e.what == "current"),
        "the job as re-read is the last event: {events:?}"
    );
}

#[test]
fn a_lagged_watch_reads_the_job_and_ends_when_it_has_finished() {
    // The job's `completed` event was among the dropped ones: the stream
    // stays open with nothing more to say.
    let url = node_with(
        "event: lagged\ndata: {\"missed\":40}\n\n".to_string(),
        true,
        "completed",
    );
    let (result, events) = within_a_minute(move || watch_all(client(&url, None)));
    result.expect("the watch ends");
    assert_eq!(events.first(), Some(&Event::Lagged { missed: 40 }));
    assert_eq!(last_state(&events), Some(JobState::Completed), "{events:?}");
}

#[test]
fn an_unnamed_event_after_a_lagged_one_is_a_job_event() {
    // SSE: a blank line ends an event, and its name with it.
    let completed = job_event("completed").replace("event: job\n", "");
    let events = format!("event: lagged\ndata: {{\"missed\":3}}\n\n{completed}");
    let url = node_with(events, true, "running");
    let (result, events) = within_a_minute(move || watch_all(client(&url, None)));
    result.expect("the watch ends on the completed event");
    assert!(
        matches!(events.last(), Some(Event::Job(e)) if e.state == JobState::Completed && e.what == "slice_done"),
        "{events:?}"
    );
}

#[test]
fn a_node_that_takes_the_request_and_never_answers_is_no_answer_after_the_timeout() {
    let url = fake_node(|_| Answer::Stall);
    let result = within_a_minute(move || client(&url, Some(Duration::from_secs(1))).job(7));
    let err = result.expect_err("no answer came");
    assert!(matches!(err, Error::NoAnswer { .. }), "{err:?}");
}

#[test]
fn a_submit_sent_but_unanswered_may_have_created_the_job() {
    let url = fake_node(|_| Answer::Drop);
    let err = within_a_minute(move || client(&url, None).submit(&JobSpec::sliced("copy")))
        .expect_err("no answer came");
    assert!(matches!(err, Error::NoAnswer { .. }), "{err:?}");
    assert!(
        err.to_string().contains("look before sending it again"),
        "{err}"
    );
}

#[test]
fn a_node_that_cannot_be_connected_to_is_unreachable_and_safe_to_retry() {
    let port = TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("its address")
        .port(); // closed again: nothing listens there
    let node = client(&format!("http://127.0.0.1:{port}"), None);
    let err = node.submit(&JobSpec::sliced("copy")).unwrap_err();
    assert!(matches!(err, Error::Unreachable { .. }), "{err:?}");
    assert!(err.to_string().contains("nothing was sent"), "{err}");
}

#[test]
fn a_spec_the_api_cannot_take_is_refused_before_anything_is_sent() {
    let url = fake_node(|_| panic!("nothing should reach the node"));
    let node = client(&url, None);
    let mut spec = JobSpec::sliced("copy");
    spec.expires_at = Some(std::time::SystemTime::now());
    let err = node.submit(&spec).unwrap_err();
    assert!(
        matches!(&err, Error::Spec(m) if m.contains("expires_at")),
        "{err:?}"
    );
}

#[test]
fn a_broken_off_stream_says_how_once() {
    let err = Error::BrokeOff {
        what: "the download",
        source: std::io::Error::other("connection reset by peer"),
    };
    let source = std::error::Error::source(&err).expect("the io error is the source");
    assert_eq!(source.to_string(), "connection reset by peer");
    assert!(!err.to_string().contains("reset"), "{err}");
}
