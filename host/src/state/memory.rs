use rustc_hash::FxHashMap;

use super::{Interner, KeyId, KeyState, Meta, StateBackend};

/// Keyed state in memory: a slab of key states and an index by key.
#[derive(Debug, Default)]
pub struct MemoryState {
    index: FxHashMap<Box<str>, KeyId>,
    slots: Vec<Option<KeyState>>,
    free: Vec<KeyId>,
}

impl MemoryState {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn get(&self, id: KeyId) -> Option<&KeyState> {
        self.slots.get(id as usize).and_then(Option::as_ref)
    }

    /// Forget `id`, handing its state over (strings still interned).
    pub fn take(&mut self, id: KeyId) -> Option<KeyState> {
        let state = self.slots.get_mut(id as usize)?.take()?;
        self.index.remove(&state.key);
        self.free.push(id);
        Some(state)
    }
}

impl StateBackend for MemoryState {
    fn lookup_or_insert(&mut self, key: &str) -> KeyId {
        if let Some(&id) = self.index.get(key) {
            return id;
        }
        let state = Some(KeyState { key: key.into(), ..KeyState::default() });
        let id = match self.free.pop() {
            Some(id) => {
                self.slots[id as usize] = state;
                id
            }
            None => {
                self.slots.push(state);
                (self.slots.len() - 1) as KeyId
            }
        };
        self.index.insert(key.into(), id);
        id
    }

    fn lookup(&self, key: &str) -> Option<KeyId> {
        self.index.get(key).copied()
    }

    fn get_mut(&mut self, id: KeyId, _: &mut Interner) -> Option<&mut KeyState> {
        self.slots.get_mut(id as usize).and_then(Option::as_mut)
    }

    fn meta(&self, id: KeyId) -> Option<Meta> {
        self.get(id).map(KeyState::meta)
    }

    fn remove(&mut self, id: KeyId, interner: &mut Interner) -> Option<bool> {
        let mut state = self.take(id)?;
        let held = !state.is_empty();
        state.release(interner);
        Some(held)
    }

    fn len(&self) -> usize {
        self.index.len()
    }

    fn ids(&self) -> Vec<KeyId> {
        self.index.values().copied().collect()
    }

    fn encode_all(&mut self, interner: &Interner, out: &mut dyn FnMut(u32, Vec<u8>)) {
        for ks in self.slots.iter().flatten() {
            let mut bytes = Vec::new();
            ks.encode(interner, &mut bytes);
            out(ks.partition, bytes);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_and_reused_after_removal() {
        let mut s = MemoryState::new();
        let a = s.lookup_or_insert("a");
        let b = s.lookup_or_insert("b");
        assert_eq!(s.lookup_or_insert("a"), a);
        assert_eq!(s.get(b).map(|k| &*k.key), Some("b"));
        assert_eq!(s.take(a).map(|k| k.key), Some("a".into()));
        assert!(s.get(a).is_none());
        assert_eq!(s.len(), 1);
        let c = s.lookup_or_insert("c");
        assert_eq!(c, a);
        assert_eq!(s.get(c).map(|k| &*k.key), Some("c"));
    }
}
