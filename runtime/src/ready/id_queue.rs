//! `IdQueue`: the job ids of one kind, bucket and priority in the ready
//! queue, smallest first (G5: ties go by submission order, and ids grow in
//! submission order). Ids arrive ascending at submit, so almost every id
//! is pushed at the back of a `VecDeque` (8 bytes a job); an id that comes
//! back out of order (a lease that expired, a resumed or re-prioritised
//! job) goes to a small `BTreeSet` beside it, and the smaller of the two
//! heads is first.

use std::collections::{BTreeSet, VecDeque};

use crate::JobId;

#[derive(Debug, Default)]
pub struct IdQueue {
    /// Ascending.
    fifo: VecDeque<JobId>,
    /// Ids put back below the fifo's tail.
    late: BTreeSet<JobId>,
}

impl IdQueue {
    pub fn push(&mut self, id: JobId) {
        match self.fifo.back() {
            Some(&last) if last >= id => {
                self.late.insert(id);
            }
            _ => self.fifo.push_back(id),
        }
    }

    /// The smallest id.
    #[cfg(test)]
    pub fn first(&self) -> Option<JobId> {
        match (self.fifo.front(), self.late.first()) {
            (Some(&a), Some(&b)) => Some(a.min(b)),
            (a, b) => a.or(b).copied(),
        }
    }

    /// The smallest id that `take` accepts: a walk from the head, as far
    /// as the first accepted id (the head, unless a filter skips some).
    pub fn first_where(&self, take: impl Fn(JobId) -> bool) -> Option<JobId> {
        let a = self.fifo.iter().copied().find(|&id| take(id));
        let b = self.late.iter().copied().find(|&id| take(id));
        match (a, b) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Removes `id`; false if it was not queued. The head (a lease) and the
    /// tail are O(1); an id in the middle (a priority change, a pause) is
    /// found by binary search and moves the shorter side of the deque.
    pub fn remove(&mut self, id: JobId) -> bool {
        if self.late.remove(&id) {
            return true;
        }
        if self.fifo.front() == Some(&id) {
            self.fifo.pop_front();
            return true;
        }
        match self.fifo.binary_search(&id) {
            Ok(i) => {
                self.fifo.remove(i);
                true
            }
            Err(_) => false,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.fifo.is_empty() && self.late.is_empty()
    }

    /// Bytes held for ids (capacity, not length).
    pub fn capacity_bytes(&self) -> usize {
        (self.fifo.capacity() + self.late.len()) * std::mem::size_of::<JobId>()
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.fifo.len() + self.late.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_come_out_smallest_first_whatever_order_they_went_in() {
        let mut q = IdQueue::default();
        let mut model = BTreeSet::new();
        let mut x = 7u64;
        for step in 0..5000 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            // Mostly ascending pushes, some put back, some removals.
            let id = match x % 10 {
                0..=5 => step + 1000,
                6 | 7 => (x >> 20) % (step + 1000),
                _ => {
                    let id = (x >> 20) % (step + 1000);
                    assert_eq!(q.remove(id), model.remove(&id));
                    continue;
                }
            };
            if model.insert(id) {
                q.push(id);
            }
            assert_eq!(q.first(), model.first().copied());
            let odd = |id: JobId| id % 2 == 1;
            assert_eq!(
                q.first_where(odd),
                model.iter().copied().find(|&id| odd(id))
            );
            assert_eq!(q.len(), model.len());
        }
        while let Some(id) = q.first() {
            assert_eq!(Some(id), model.pop_first());
            assert!(q.remove(id));
        }
        assert!(q.is_empty() && model.is_empty());
    }
}
