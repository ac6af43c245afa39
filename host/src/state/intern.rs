//! Strings of stored events, each kept once, counted by reference.
//!
//! Events hold a [`Sym`] (four bytes) per string field. Building a call into
//! the guest then maps symbols to per-call dictionary codes with an array
//! lookup instead of hashing every string of every window, and a string
//! that no stored event holds any more is freed.

use std::hash::BuildHasher;

use hashbrown::HashTable;
use rustc_hash::FxBuildHasher;

/// A handle to an interned string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Sym(pub u32);

/// A slot. A freed slot (no references) keeps its text until it is reused,
/// so a call built before the release still resolves its symbols.
#[derive(Debug)]
struct Entry {
    text: Box<str>,
    refs: u32,
}

#[derive(Debug, Default)]
pub struct Interner {
    table: HashTable<u32>,
    entries: Vec<Entry>,
    free: Vec<u32>,
    /// Freed since the last [`Interner::reclaim`]: a call being built may
    /// still refer to them, so they are not reused yet.
    quarantine: Vec<u32>,
    /// Slots given a new string since the last [`Interner::drain_changes`].
    changed: Vec<u32>,
}

impl Interner {
    pub fn new() -> Self {
        Self::default()
    }

    /// The symbol of `text`, taking one reference.
    pub fn intern(&mut self, text: &str) -> Sym {
        let hash = FxBuildHasher.hash_one(text);
        let entries = &self.entries;
        if let Some(&i) = self.table.find(hash, |&i| &*entries[i as usize].text == text) {
            self.entries[i as usize].refs += 1;
            return Sym(i);
        }
        let entry = Entry { text: text.into(), refs: 1 };
        let i = match self.free.pop() {
            Some(i) => {
                self.entries[i as usize] = entry;
                i
            }
            None => {
                self.entries.push(entry);
                (self.entries.len() - 1) as u32
            }
        };
        self.changed.push(i);
        let entries = &self.entries;
        self.table.insert_unique(hash, i, |&j| FxBuildHasher.hash_one(&*entries[j as usize].text));
        Sym(i)
    }

    /// Drop one reference; with the last, the symbol waits for
    /// [`Interner::reclaim`] to be reused.
    pub fn release(&mut self, sym: Sym) {
        let Some(e) = self.entries.get_mut(sym.0 as usize).filter(|e| e.refs > 0) else { return };
        e.refs -= 1;
        if e.refs > 0 {
            return;
        }
        let hash = FxBuildHasher.hash_one(&*e.text);
        if let Ok(slot) = self.table.find_entry(hash, |&i| i == sym.0) {
            slot.remove();
        }
        self.quarantine.push(sym.0);
    }

    /// Make symbols freed so far reusable: call once nothing built before
    /// (a call in progress) can refer to them any more.
    pub fn reclaim(&mut self) {
        self.free.append(&mut self.quarantine);
    }

    /// The text of `sym`: the last it held if it has been freed since.
    pub fn resolve(&self, sym: Sym) -> &str {
        self.entries.get(sym.0 as usize).map_or("", |e| &e.text)
    }

    /// Slots given a new string since the last call, with that string,
    /// even if freed since (a mirror of the table stays exact by applying
    /// these).
    pub fn drain_changes(&mut self) -> impl Iterator<Item = (Sym, &str)> + '_ {
        let entries = &self.entries;
        self.changed.drain(..).map(move |i| (Sym(i), &*entries[i as usize].text))
    }

    /// Every slot and its text (freed slots: their last text).
    pub fn slots(&self) -> impl Iterator<Item = (Sym, &str)> + '_ {
        self.entries.iter().enumerate().map(|(i, e)| (Sym(i as u32), &*e.text))
    }

    /// Live strings.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// One past the largest symbol handed out: the size of a table indexed
    /// by symbol.
    pub fn capacity(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn changes(i: &mut Interner) -> Vec<(Sym, String)> {
        i.drain_changes().map(|(s, t)| (s, t.to_string())).collect()
    }

    #[test]
    fn equal_strings_share_a_symbol_until_the_last_release() {
        let mut i = Interner::new();
        let a = i.intern("item-1");
        let b = i.intern("item-1");
        let c = i.intern("item-2");
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(i.len(), 2);
        i.release(a);
        assert_eq!(i.resolve(b), "item-1");
        i.release(b);
        assert_eq!(i.len(), 1);
        // Freed: its text stays, and its slot is not reused before reclaim.
        let q = i.intern("item-q");
        assert_ne!(q, a);
        assert_eq!(i.resolve(a), "item-1");
        i.reclaim();
        let d = i.intern("item-3");
        assert_eq!(d, a);
        assert_eq!(i.resolve(d), "item-3");
        assert_eq!(i.intern("item-2"), c);
        assert_eq!(i.capacity(), 3);
    }

    #[test]
    fn the_change_log_reports_every_slot_given_a_string() {
        let mut i = Interner::new();
        let a = i.intern("x");
        assert_eq!(changes(&mut i), vec![(a, "x".to_string())]);
        // Freed, reused and freed again between two looks: still reported,
        // with the text the slot holds now.
        i.release(a);
        i.reclaim();
        let b = i.intern("y");
        assert_eq!(b, a);
        i.release(b);
        assert_eq!(changes(&mut i), vec![(a, "y".to_string())]);
        assert!(changes(&mut i).is_empty());
    }
}
