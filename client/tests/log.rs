//! A service receives the worker's messages through `WorkOptions::log`
//! instead of finding them on stderr.

use std::sync::{Arc, Mutex};

use booster_client::{Log, Runtime, WorkOptions};

#[tokio::test]
async fn a_worker_that_cannot_reach_its_node_tells_the_services_log() {
    // A loopback port nobody listens on: bound, then released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let said = Arc::new(Mutex::new(Vec::<String>::new()));
    let (first_tx, first_rx) = tokio::sync::oneshot::channel::<()>();
    let first_tx = Mutex::new(Some(first_tx));
    let kept = said.clone();
    let log = Log::new(move |message| {
        kept.lock().expect("log lock").push(message.to_string());
        if let Some(tx) = first_tx.lock().expect("signal lock").take() {
            let _ = tx.send(());
        }
    });

    // No handler is needed to try joining.
    let service = Runtime::connect(&format!("http://127.0.0.1:{port}"), None).expect("a URL");
    let opts = WorkOptions {
        log,
        ..Default::default()
    };
    // Stops once the log has heard from the worker (it keeps trying to
    // join a node that is not there, saying so once), or after a minute,
    // which bounds a hang and measures nothing: the assertions then fail.
    service
        .work(opts, async {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(60), first_rx).await;
        })
        .await
        .expect("stopped while joining");

    let said = said.lock().expect("log lock").clone();
    assert!(
        said.iter()
            .any(|m| m.starts_with("joining the node:") && m.ends_with("trying again")),
        "{said:?}"
    );
    assert!(
        said.iter().all(|m| !m.starts_with("booster work:")),
        "the prefix is stderr's, not the message's: {said:?}"
    );
}
