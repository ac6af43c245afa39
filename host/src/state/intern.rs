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

    /// Drop one reference; the symbol is free for reuse with its last one.
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
        self.free.push(sym.0);
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
        // A freed slot keeps its text until reused (calls already built
        // still resolve it), and the change log reports it.
        assert_eq!(i.resolve(a), "item-1");
        let changes: Vec<(Sym, String)> = i.drain_changes().map(|(s, t)| (s, t.to_string())).collect();
        assert_eq!(changes, vec![(a, "item-1".to_string()), (c, "item-2".to_string())]);
        let d = i.intern("item-3");
        assert_eq!(d, a);
        assert_eq!(i.resolve(d), "item-3");
        assert_eq!(i.intern("item-2"), c);
        assert_eq!(i.capacity(), 2);
        let changes: Vec<(Sym, String)> = i.drain_changes().map(|(s, t)| (s, t.to_string())).collect();
        assert_eq!(changes, vec![(a, "item-3".to_string())]);
        // A slot freed and reused before anyone looked is still reported.
        i.release(d);
        let e = i.intern("item-4");
        i.release(e);
        let changes: Vec<(Sym, String)> = i.drain_changes().map(|(s, t)| (s, t.to_string())).collect();
        assert_eq!(changes, vec![(a, "item-4".to_string())]);
    }
}
