//! Work the node leased a remote worker and then could not send it (its
//! reply would not encode: a record of 4 GiB or more, whose length a
//! record blob cannot say). Left held, the lease expired, was leased
//! again, failed to encode again, and so until the work failed as hung;
//! the worker saw only `Internal`. Now the node fails the work once, as a
//! handler's failure would, naming why.

use crate::dispatch::TaskWork;
use crate::Runtime;

use super::{RemoteError, RemoteSession};

impl Runtime {
    /// Lease `epoch` of the remote process of `session` could not be sent
    /// to it (`why`): its work fails now, through the commit a local
    /// worker's failure takes (a slice fails, a hook fails); simple jobs
    /// go back to the node's own threads where one can run them, else
    /// fail with no retry (sending them again would not change). A lease
    /// that ended meanwhile, or is not the process's, is left alone.
    /// Blocks until the failure is committed: call it off the async
    /// threads.
    pub fn remote_unsent(
        &self,
        session: &RemoteSession,
        epoch: u64,
        why: &str,
    ) -> Result<(), RemoteError> {
        let shared = self.shared();
        let held = {
            let mut st = shared.state.lock();
            st.book.fleet.check(session)?;
            let mine = (st.book.fleet.held.get(&epoch)).is_some_and(|h| h.group == session.worker);
            let live = st.book.leases.get(&epoch).is_some_and(|l| !l.committing);
            if !(mine && live) {
                return Ok(());
            }
            st.book.fleet.held.remove(&epoch).expect("checked above")
        };
        let why = format!("the node could not send this work to a remote worker: {why}");
        let store = self.store();
        match held.work {
            TaskWork::Slice(item) => {
                let count = held.records as u64;
                let result = Err(why);
                crate::worker::commit_result(
                    shared,
                    store,
                    epoch,
                    &item,
                    &[],
                    count,
                    result,
                    held.leased,
                    None,
                );
            }
            // Handed back where a thread of the node can run them, as a
            // job too large to lease is.
            TaskWork::Simple(items) => {
                super::refuse_unsendable(shared, store, held.group, epoch, &items, &why);
            }
            TaskWork::Before(item) => {
                crate::worker::commit_hook(shared, store, epoch, item.job, true, Err(why));
            }
            TaskWork::After(item) => {
                crate::worker::commit_hook(shared, store, epoch, item.job, false, Err(why));
            }
        }
        Ok(())
    }
}
