//! A `State` over a store, as the runtime keeps them, for unit tests of
//! checkpoints: each record that applies is appended to the store;
//! `checkpoint` writes one as `Runtime::checkpoint`
//! does; `reopen` replays the store's log into a fresh state, as an open
//! does. The store runs on the simulated file system (nothing on disk).

use std::ops::ControlFlow;
use std::sync::Arc;

use booster_store::fs::sim::SimFileLayer;
use booster_store::{Batch, Store, StoreOptions};

use crate::meta::{self, Meta};
use crate::slice_store::SliceStore;
use crate::state::{Book, State};
use crate::table::Job;
use crate::RuntimeError;

pub(crate) struct Logged {
    pub st: State,
    concrete: Arc<Store<SimFileLayer>>,
    pub store: Arc<dyn SliceStore>,
}

/// Appends `batch` and waits until it is durable.
pub(crate) fn append(store: &dyn SliceStore, batch: Batch) {
    let (tx, rx) = std::sync::mpsc::channel();
    store.append_with(
        batch,
        Box::new(move |r| {
            let _ = tx.send(r.map(|_| ()));
        }),
    );
    rx.recv().expect("the store answers").expect("the append");
}

impl Logged {
    pub fn new(st: State) -> Logged {
        let (store, _) =
            Store::open_with(SimFileLayer::new(), "/logged", StoreOptions::default()).unwrap();
        let concrete = Arc::new(store);
        let store: Arc<dyn SliceStore> = concrete.clone();
        Logged {
            st,
            concrete,
            store,
        }
    }

    /// Applies `m` and logs it if it applied. (The runtime checks a
    /// record under the lock before it writes it, so a refused one is not
    /// in the log; here the check is the apply, and only the store's
    /// reader sees the order.)
    pub fn apply(&mut self, m: &Meta) -> Result<(), RuntimeError> {
        let applied = self.st.apply(m);
        if applied.is_ok() {
            append(&*self.store, Batch::new().meta(meta::encode(m)));
        }
        applied
    }

    /// Writes a checkpoint; once it is durable the finished rows it wrote
    /// leave RAM.
    pub fn checkpoint(&mut self) {
        self.checkpoint_at(0);
    }

    /// `checkpoint`, with the retention sweep by `now_ms`.
    pub fn checkpoint_at(&mut self, now_ms: u64) {
        let (batch, record, _) =
            crate::table::image::swept_checkpoint_batch(&mut self.st, &*self.store, now_ms)
                .unwrap();
        let sealed = self.st.table.seal();
        append(&*self.store, batch);
        self.st.apply(&record).unwrap();
        let image = Arc::downgrade(&self.store);
        self.st.table.written_through(sealed, image);
    }

    /// A fresh state (`book`) replayed from the store's log.
    pub fn reopen(&mut self, book: Book) {
        let mut st = State::new(book);
        let records = self.concrete.meta_records().unwrap();
        let lost = crate::runtime::replay_log(&self.store, &mut st, &records, None).unwrap();
        assert!(lost.is_empty(), "{lost:?}");
        self.st = st;
    }

    /// Replays `records` (a compaction snapshot) over this store's pages
    /// into a fresh state (`book`).
    pub fn replay(&self, book: Book, records: &[Vec<u8>]) -> State {
        let mut st = State::new(book);
        let lost = crate::runtime::replay_log(&self.store, &mut st, records, None).unwrap();
        assert!(lost.is_empty(), "{lost:?}");
        st
    }
}

/// Every row of `st`'s table, ascending id: RAM's over the store's.
pub(crate) fn all_rows(st: &State) -> Vec<Job> {
    let mut rows = Vec::new();
    st.table
        .scan(false, |j| {
            rows.push(j.into_owned());
            ControlFlow::Continue(())
        })
        .unwrap();
    rows
}
