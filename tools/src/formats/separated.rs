//! Gives each record read the exact bytes around it that no record holds
//! (`booster_runtime::Separators`), so a 1:1 output is written back byte
//! for byte (ARCHITECTURE.md, "Exact round trips").
//!
//! A reader tells [`Separated`] what it meets in input order: the bytes
//! between items ([`Separated::gap`]: a terminator, blank lines), each
//! record, each rejected item, and the end. The last record is held back
//! until the next item or the end shows what followed it; only bytes that
//! differ from the layout's usual ones are kept (`None` otherwise), so a
//! regular file allocates nothing per record.

use booster_runtime::Separators;

use super::input::Item;

/// Who the bytes of [`Separated::gap`] belong to.
enum Owner {
    /// No item yet: the bytes before the first record.
    Start,
    /// The held record: the bytes after it.
    Held {
        bytes: Vec<u8>,
        line: u64,
        before: Option<Vec<u8>>,
    },
    /// A rejected item: its bytes go with it, to `errors`.
    Nobody,
}

pub struct Separated {
    owner: Owner,
    gap: Vec<u8>,
    /// The usual bytes after a record: the layout's line ending.
    ending: &'static [u8],
    /// The usual bytes before the first record: the header's line ending
    /// (CSV), nothing (lines, JSON Lines).
    usual_before: &'static [u8],
}

impl Separated {
    pub fn new(ending: &'static [u8], usual_before: &'static [u8]) -> Separated {
        Separated {
            owner: Owner::Start,
            gap: Vec::new(),
            ending,
            usual_before,
        }
    }

    /// Bytes that belong to no item, in input order.
    pub fn gap(&mut self, bytes: &[u8]) {
        if !matches!(self.owner, Owner::Nobody) {
            self.gap.extend_from_slice(bytes);
        }
    }

    /// A record: the held one goes out with what followed it; this one is
    /// held.
    pub fn record(&mut self, bytes: Vec<u8>, line: u64, out: &mut Vec<Item>) {
        let before = match self.owner {
            Owner::Start => unusual(&mut self.gap, self.usual_before),
            _ => {
                self.release(out);
                None
            }
        };
        self.owner = Owner::Held {
            bytes,
            line,
            before,
        };
    }

    /// A rejected item: the held record goes out first, then it; the bytes
    /// after it are its own.
    pub fn rejected(&mut self, item: Item, out: &mut Vec<Item>) {
        self.release(out);
        out.push(item);
        self.owner = Owner::Nobody;
    }

    /// The end of the input: the held record goes out with every byte
    /// after it (none at all: a last line without a terminator).
    pub fn end(&mut self, out: &mut Vec<Item>) {
        self.release(out);
        self.owner = Owner::Nobody;
    }

    fn release(&mut self, out: &mut Vec<Item>) {
        let after = unusual(&mut self.gap, self.ending);
        if let Owner::Held {
            bytes,
            line,
            before,
        } = std::mem::replace(&mut self.owner, Owner::Nobody)
        {
            out.push(Item::Record {
                bytes,
                line,
                separators: Separators { before, after },
            });
        }
    }
}

/// The gap's bytes when they are not `usual`; the gap is emptied either
/// way, keeping its buffer when they are (no allocation per record).
fn unusual(gap: &mut Vec<u8>, usual: &[u8]) -> Option<Vec<u8>> {
    if gap == usual {
        gap.clear();
        None
    } else {
        Some(std::mem::take(gap))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn separators(item: &Item) -> &Separators {
        match item {
            Item::Record { separators, .. } => separators,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn only_unusual_separators_are_kept() {
        let mut s = Separated::new(b"\n", b"\n");
        let mut out = Vec::new();
        s.gap(b"\n");
        s.record(b"a".to_vec(), 2, &mut out);
        s.gap(b"\n");
        s.record(b"b".to_vec(), 3, &mut out);
        s.gap(b"\n\n\n");
        s.record(b"c".to_vec(), 6, &mut out);
        s.end(&mut out);
        assert_eq!(out.len(), 3);
        assert!(separators(&out[0]).is_regular());
        assert_eq!(separators(&out[1]).after.as_deref(), Some(&b"\n\n\n"[..]));
        assert_eq!(separators(&out[2]).after.as_deref(), Some(&b""[..]));
    }

    #[test]
    fn the_bytes_after_a_rejected_item_go_with_it() {
        let mut s = Separated::new(b"\n", b"");
        let mut out = Vec::new();
        s.gap(b"\n\n");
        s.record(b"a".to_vec(), 3, &mut out);
        s.gap(b"\n");
        s.rejected(Item::record(b"bad".to_vec(), 4), &mut out);
        s.gap(b"\n\n");
        s.record(b"c".to_vec(), 6, &mut out);
        s.gap(b"\n");
        s.end(&mut out);
        assert_eq!(separators(&out[0]).before.as_deref(), Some(&b"\n\n"[..]));
        assert!(separators(&out[0]).after.is_none());
        assert!(separators(&out[2]).is_regular());
    }
}
