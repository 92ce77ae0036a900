//! Kind ids: each kind name gets a small number, the id the ready queue,
//! and later the job table's rows and kind index, use instead of the name.
//! An id is decided by the log, so live and replay agree: a submit whose
//! kind has no id yet writes a `kind_id` record (`Meta::KindId`) in the
//! same batch, before its `created` record, with an id it reserved under
//! the state lock (two submits of one new kind reserve the same id, so
//! whichever batch applies first interns it and the other's record changes
//! nothing). A log from before kind ids (no such records) interns each
//! kind at its first `created` or `restore`, in log order.

use std::collections::HashMap;
use std::sync::Arc;

use crate::RuntimeError;

/// Kind ids start at 1.
pub type KindId = u32;

#[derive(Debug)]
pub struct KindIds {
    by_name: HashMap<Arc<str>, KindId>,
    names: HashMap<KindId, Arc<str>>,
    /// Ids handed to submits whose `kind_id` record has not applied yet.
    reserved: HashMap<Arc<str>, KindId>,
    /// Above every id interned or reserved.
    next: KindId,
}

impl Default for KindIds {
    fn default() -> Self {
        KindIds {
            by_name: HashMap::new(),
            names: HashMap::new(),
            reserved: HashMap::new(),
            next: 1,
        }
    }
}

impl KindIds {
    pub fn id(&self, name: &str) -> Option<KindId> {
        self.by_name.get(name).copied()
    }

    pub fn name(&self, id: KindId) -> Option<&Arc<str>> {
        self.names.get(&id)
    }

    /// The id a submit of kind `name` must log, or None when the kind
    /// already has one (no record needed).
    pub fn reserve(&mut self, name: &str) -> Option<KindId> {
        if self.by_name.contains_key(name) {
            return None;
        }
        if let Some(&id) = self.reserved.get(name) {
            return Some(id);
        }
        let id = self.next;
        self.next = self.next.saturating_add(1);
        self.reserved.insert(Arc::from(name), id);
        Some(id)
    }

    /// Applies a `kind_id` record: the first record of a name wins; an id
    /// already naming another kind is corruption.
    pub fn apply(&mut self, id: KindId, name: &str) -> Result<(), RuntimeError> {
        if self.by_name.contains_key(name) {
            return Ok(());
        }
        if id == 0 || id > super::keys::MAX_KIND_ID {
            return Err(RuntimeError::Corrupt(format!(
                "kind_id: id {id} for kind {name:?} is out of range"
            )));
        }
        if let Some(other) = self.name(id) {
            return Err(RuntimeError::Corrupt(format!(
                "kind_id: id {id} names both {other:?} and {name:?}"
            )));
        }
        self.insert(id, Arc::from(name));
        Ok(())
    }

    /// The id of `name`, interning it at the next free id when it has none
    /// (logs from before kind ids, and jobs the runtime makes itself).
    pub fn intern(&mut self, name: &Arc<str>) -> KindId {
        if let Some(id) = self.id(name) {
            return id;
        }
        let id = self.next;
        self.insert(id, name.clone());
        id
    }

    fn insert(&mut self, id: KindId, name: Arc<str>) {
        self.names.insert(id, name.clone());
        self.reserved.remove(&name);
        self.by_name.insert(name, id);
        self.next = self.next.max(id.saturating_add(1));
    }

    /// Every interned kind, ascending by id.
    pub fn iter(&self) -> impl Iterator<Item = (KindId, &Arc<str>)> {
        let mut all: Vec<(KindId, &Arc<str>)> = self.names.iter().map(|(i, n)| (*i, n)).collect();
        all.sort_unstable_by_key(|(i, _)| *i);
        all.into_iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reserved_id_is_shared_until_its_record_applies() {
        let mut k = KindIds::default();
        let a: Arc<str> = Arc::from("a");
        assert_eq!(k.intern(&a), 1);
        assert_eq!(k.reserve("a"), None, "an interned kind needs no record");
        assert_eq!(k.reserve("b"), Some(2));
        assert_eq!(
            k.reserve("b"),
            Some(2),
            "a second submit of b logs the same id"
        );
        assert_eq!(k.reserve("c"), Some(3));
        // c's batch applies first; b's failed or is still on its way.
        k.apply(3, "c").unwrap();
        k.apply(2, "b").unwrap();
        k.apply(2, "b").unwrap();
        assert_eq!((k.id("b"), k.id("c")), (Some(2), Some(3)));
        assert_eq!(k.intern(&Arc::from("d")), 4);
        let all: Vec<(KindId, String)> = k.iter().map(|(i, n)| (i, n.to_string())).collect();
        assert_eq!(
            all,
            [(1, "a"), (2, "b"), (3, "c"), (4, "d")].map(|(i, n)| (i, n.into()))
        );
    }

    #[test]
    fn an_id_naming_two_kinds_or_out_of_range_is_corruption() {
        let mut k = KindIds::default();
        k.apply(7, "a").unwrap();
        assert!(matches!(k.apply(7, "b"), Err(RuntimeError::Corrupt(_))));
        assert!(matches!(k.apply(0, "c"), Err(RuntimeError::Corrupt(_))));
        let max = crate::table::keys::MAX_KIND_ID;
        assert!(matches!(
            k.apply(max + 1, "c"),
            Err(RuntimeError::Corrupt(_))
        ));
        // A large id is one map entry, not a table up to it.
        k.apply(max, "d").unwrap();
        assert_eq!(k.intern(&Arc::from("e")), max + 1);
    }
}
