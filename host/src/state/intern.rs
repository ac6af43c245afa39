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

#[derive(Debug)]
struct Entry {
    text: Box<str>,
    refs: u32,
}

#[derive(Debug, Default)]
pub struct Interner {
    table: HashTable<u32>,
    entries: Vec<Option<Entry>>,
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
        let found = self.table.find(hash, |&i| entries[i as usize].as_ref().is_some_and(|e| &*e.text == text));
        if let Some(&i) = found {
            if let Some(e) = self.entries[i as usize].as_mut() {
                e.refs += 1;
            }
            return Sym(i);
        }
        let entry = Some(Entry { text: text.into(), refs: 1 });
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
        self.table
            .insert_unique(hash, i, |&j| FxBuildHasher.hash_one(entries[j as usize].as_ref().map_or("", |e| &*e.text)));
        Sym(i)
    }

    /// Take one more reference to `sym`.
    pub fn retain(&mut self, sym: Sym) {
        if let Some(Some(e)) = self.entries.get_mut(sym.0 as usize) {
            e.refs += 1;
        }
    }

    /// Drop one reference; the string is freed with its last one.
    pub fn release(&mut self, sym: Sym) {
        let Some(Some(e)) = self.entries.get_mut(sym.0 as usize) else {
            return;
        };
        e.refs -= 1;
        if e.refs > 0 {
            return;
        }
        let hash = FxBuildHasher.hash_one(&*e.text);
        if let Ok(slot) = self.table.find_entry(hash, |&i| i == sym.0) {
            slot.remove();
        }
        self.entries[sym.0 as usize] = None;
        self.free.push(sym.0);
    }

    pub fn resolve(&self, sym: Sym) -> &str {
        self.entries.get(sym.0 as usize).and_then(Option::as_ref).map_or("", |e| &e.text)
    }

    /// Strings given a symbol since the last call (a mirror of the table
    /// stays current by applying these).
    pub fn drain_changes(&mut self) -> impl Iterator<Item = (Sym, &str)> + '_ {
        let entries = &self.entries;
        self.changed.drain(..).filter_map(move |i| entries[i as usize].as_ref().map(|e| (Sym(i), &*e.text)))
    }

    /// Every live string.
    pub fn live(&self) -> impl Iterator<Item = (Sym, &str)> + '_ {
        self.entries.iter().enumerate().filter_map(|(i, e)| e.as_ref().map(|e| (Sym(i as u32), &*e.text)))
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
        // The freed slot is reused, and the new string resolves correctly.
        let d = i.intern("item-3");
        assert_eq!(d, a);
        assert_eq!(i.resolve(d), "item-3");
        assert_eq!(i.intern("item-2"), c);
        assert_eq!(i.capacity(), 2);
    }
}
