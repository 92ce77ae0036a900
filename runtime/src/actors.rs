//! The actors (ractor on tokio): the supervisor, which starts the worker
//! threads and replaces any that panicked or hung, and supervises the timer;
//! and the timer, which expires leases whose heartbeats stopped, releases
//! scheduled jobs and drops jobs past `expires_at`.
//!
//! The hot path (lease, commit) does not go through a mailbox: workers call
//! the dispatcher under the state mutex, and commits are applied by the
//! store's commit thread (see `shared::commit`).

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use crate::slice_store::SliceStore;
use ractor::{Actor, ActorProcessingErr, ActorRef, SupervisionEvent};
use tokio::task::JoinHandle;

use crate::meta::{Control, Meta};
use crate::shared::{batch_of, commit, write_one, Shared};

const TICK: Duration = Duration::from_millis(10);

pub enum SupervisorMsg {
    /// Start a fresh thread in this worker slot (its old one panicked or hung).
    ReplaceWorker(usize),
}

pub struct Supervisor;

pub struct SupervisorArgs {
    pub shared: Arc<Shared>,
    pub store: Weak<dyn SliceStore>,
    pub start_workers: bool,
}

pub struct SupervisorState {
    args: SupervisorArgs,
}

impl Actor for Supervisor {
    type Msg = SupervisorMsg;
    type State = SupervisorState;
    type Arguments = SupervisorArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: SupervisorArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        start_timer(&myself, &args).await?;
        if args.start_workers {
            if let Some(store) = args.store.upgrade() {
                let n = args.shared.state.lock().book.workers.len();
                for w in 0..n {
                    crate::worker::spawn(args.shared.clone(), store.clone(), w, 0);
                }
            }
        }
        Ok(SupervisorState { args })
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        msg: SupervisorMsg,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            SupervisorMsg::ReplaceWorker(w) => {
                let generation = {
                    let st = state.args.shared.state.lock();
                    if st.book.stopping {
                        return Ok(());
                    }
                    st.book.workers.get(w).map(|s| s.generation)
                };
                if let (Some(generation), Some(store)) = (generation, state.args.store.upgrade()) {
                    crate::worker::spawn(state.args.shared.clone(), store, w, generation);
                }
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<Self::Msg>,
        event: SupervisionEvent,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        if let SupervisionEvent::ActorFailed(_, _) = event {
            if !state.args.shared.state.lock().book.stopping {
                start_timer(&myself, &state.args).await?;
            }
        }
        Ok(())
    }
}

async fn start_timer(
    myself: &ActorRef<SupervisorMsg>,
    args: &SupervisorArgs,
) -> Result<(), ActorProcessingErr> {
    let timer_args = TimerArgs {
        shared: args.shared.clone(),
        store: args.store.clone(),
        supervisor: myself.clone(),
    };
    Actor::spawn_linked(None, Timer, timer_args, myself.get_cell()).await?;
    Ok(())
}

pub enum TimerMsg {
    Tick,
}

pub struct Timer;

pub struct TimerArgs {
    shared: Arc<Shared>,
    store: Weak<dyn SliceStore>,
    supervisor: ActorRef<SupervisorMsg>,
}

pub struct TimerState {
    args: TimerArgs,
    ticker: JoinHandle<()>,
}

impl Actor for Timer {
    type Msg = TimerMsg;
    type State = TimerState;
    type Arguments = TimerArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: TimerArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        let ticker = myself.send_interval(TICK, || TimerMsg::Tick);
        Ok(TimerState { args, ticker })
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: &mut TimerState,
    ) -> Result<(), ActorProcessingErr> {
        state.ticker.abort();
        Ok(())
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        TimerMsg::Tick: TimerMsg,
        state: &mut TimerState,
    ) -> Result<(), ActorProcessingErr> {
        let a = &state.args;
        let now_ms = a.shared.clock.now_ms();
        let (due, cron_runs) = {
            let mut st = a.shared.state.lock();
            (st.tick(now_ms), st.cron_due(now_ms))
        };
        if !cron_runs.is_empty() {
            if let Some(store) = a.store.upgrade() {
                let runs = crate::cron::submit_cron_runs(a.shared.clone(), store, cron_runs);
                tokio::spawn(runs);
            } else {
                a.shared.state.lock().clear_cron_pending();
            }
        }
        for w in due.replace_workers {
            let _ = a.supervisor.cast(SupervisorMsg::ReplaceWorker(w));
        }
        if let Some(store) = a.store.upgrade() {
            for e in due.expired {
                let batch = batch_of(&e.records);
                let epoch = e.epoch;
                commit(&a.shared, &store, batch, e.records, move |st, _| {
                    st.release(epoch)
                });
            }
        }
        if !due.expire.is_empty() {
            if let Some(store) = a.store.upgrade() {
                let shared = a.shared.clone();
                tokio::spawn(async move {
                    for job in due.expire {
                        let m = Meta::Control {
                            job,
                            at_ms: shared.clock.now_ms(),
                            action: Control::Expire,
                        };
                        let _ = write_one(&shared, &store, m).await;
                    }
                });
            }
        }
        checkpoint_if_due(&a.shared, &a.store, now_ms);
        crate::compaction::compact_if_due(&a.shared, &a.store);
        a.shared.changed();
        Ok(())
    }
}

/// Starts a checkpoint when one is due (`State::checkpoint_due`) and none
/// of the timer's is on its way. It runs off the timer: the timer keeps
/// ticking (leases expire, cron runs start) while it is written.
fn checkpoint_if_due(shared: &Arc<Shared>, store: &Weak<dyn SliceStore>, now_ms: u64) {
    let Some(store) = store.upgrade() else {
        return;
    };
    if !(shared.state.lock()).timer_checkpoint_due(now_ms, || store.free_bytes()) {
        return;
    }
    if shared.checkpointing.swap(true, Ordering::AcqRel) {
        return;
    }
    let shared = shared.clone();
    tokio::spawn(async move {
        // A checkpoint that cannot be written loses nothing (the log holds
        // every record); `take_checkpoint` counts it, says why once, and
        // the next is tried after a backoff (`checkpoints.rs`).
        let _ = crate::runtime::take_checkpoint(shared.clone(), store).await;
        shared.checkpointing.store(false, Ordering::Release);
    });
}
