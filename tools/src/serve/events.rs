//! `GET /api/events[?job=ID]`: job events as server-sent events, straight
//! from `Runtime::subscribe`. A client that falls behind gets a `lagged`
//! event telling it to re-read the jobs instead of a silent gap. An open
//! stream counts against `max_event_streams`, not the API's connections.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::Extension;
use booster_runtime::JobEvent;
use futures::{Stream, StreamExt};
use serde::Deserialize;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use tokio_stream::wrappers::BroadcastStream;

use super::connections::ConnectionSlot;
use super::AppState;

#[derive(Deserialize)]
pub struct EventsQuery {
    pub job: Option<u64>,
}

pub async fn events(
    State(app): State<AppState>,
    slot: Option<Extension<ConnectionSlot>>,
    query: Result<Query<EventsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, super::error::ApiError> {
    let Query(query) = query?;
    // Subscribed before the stream counts as open, so whoever sees it
    // counted (`Server::event_streams`) knows it misses no later event.
    let events = app.runtime.subscribe();
    // Counted among event streams from now on, not among API connections.
    if let Some(Extension(slot)) = slot {
        slot.become_event_stream()?;
    }
    let only = query.job;
    let stream = BroadcastStream::new(events).filter_map(move |item| {
        let event = match item {
            Ok(ev) if only.is_some_and(|j| j != ev.job) => None,
            Ok(ev) => Some(job_event(&ev)),
            Err(BroadcastStreamRecvError::Lagged(n)) => Some(
                Event::default()
                    .event("lagged")
                    .data(format!("{{\"missed\":{n}}}")),
            ),
        };
        std::future::ready(event.map(Ok))
    });
    let mut stopping = app.stopping.clone();
    let stream = stream.take_until(async move {
        let _ = stopping.wait_for(|stop| *stop).await;
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

pub fn job_event(ev: &JobEvent) -> Event {
    let data =
        serde_json::to_string(&super::view::JobEventView::from(ev)).expect("an event serialises");
    Event::default().event("job").data(data)
}
