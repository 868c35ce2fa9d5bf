//! A write set over one sled tree: how applied entries become one atomic sled batch.
//!
//! openraft hands `apply` a run of committed entries. Each entry may read what an earlier entry of
//! the same batch wrote, so reads look in the pending writes first, then in the tree. When the
//! batch is done (the run, or the entries that reached the store's key bound), every write goes to
//! sled in one `apply_batch`, which is atomic: after a crash the state machine holds either all of
//! the batch (with its `last_applied`) or none of it, and openraft re-applies what is missing from
//! the durable log.

use std::collections::BTreeMap;
use std::ops::Bound;

/// Pending writes (`None` = delete) over a base tree.
pub struct WriteSet<'a> {
    tree: &'a sled::Tree,
    pending: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
}

impl<'a> WriteSet<'a> {
    pub fn new(tree: &'a sled::Tree) -> Self {
        WriteSet { tree, pending: BTreeMap::new() }
    }

    /// The value as the run sees it so far.
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, sled::Error> {
        match self.pending.get(key) {
            Some(v) => Ok(v.clone()),
            None => Ok(self.tree.get(key)?.map(|v| v.to_vec())),
        }
    }

    pub fn insert(&mut self, key: impl Into<Vec<u8>>, value: Vec<u8>) {
        self.pending.insert(key.into(), Some(value));
    }

    pub fn remove(&mut self, key: impl Into<Vec<u8>>) {
        self.pending.insert(key.into(), None);
    }

    /// Up to `limit` live entries whose key starts with `prefix`, in key order, merging the
    /// pending writes over the tree.
    pub fn scan_prefix(&self, prefix: &[u8], limit: usize) -> Result<Vec<(Vec<u8>, Vec<u8>)>, sled::Error> {
        self.scan_from(prefix, prefix, limit)
    }

    /// Like [`WriteSet::scan_prefix`], starting at `start` (inclusive; at or after `prefix`).
    ///
    /// The tree and the pending writes are walked together and the walk stops after `limit` live
    /// entries, so the cost is `limit` plus the pending deletes met on the way, not the size of
    /// the run's pending writes (a run of hundreds of requests under one prefix made every scan
    /// of the old merge-everything version quadratic).
    pub fn scan_from(&self, start: &[u8], prefix: &[u8], limit: usize) -> Result<Vec<(Vec<u8>, Vec<u8>)>, sled::Error> {
        let mut tree = self.tree.range(start..).peekable();
        let mut pending = self.pending.range::<[u8], _>((Bound::Included(start), Bound::Unbounded)).peekable();
        let mut out = Vec::new();
        while out.len() < limit {
            let tree_key = match tree.peek() {
                Some(Ok((k, _))) if k.starts_with(prefix) => Some(k.clone()),
                Some(Err(_)) => return Err(tree.next().and_then(|r| r.err()).expect("peeked an error")),
                _ => None,
            };
            let pending_key = pending.peek().filter(|(k, _)| k.starts_with(prefix)).map(|(k, _)| k.as_slice());
            match (tree_key, pending_key) {
                (None, None) => break,
                // The pending write wins over the tree's value of the same key.
                (Some(t), Some(p)) if p <= t.as_ref() => {
                    if p == t.as_ref() {
                        tree.next();
                    }
                    let (k, v) = pending.next().expect("peeked");
                    if let Some(v) = v {
                        out.push((k.clone(), v.clone()));
                    }
                }
                (None, Some(_)) => {
                    let (k, v) = pending.next().expect("peeked");
                    if let Some(v) = v {
                        out.push((k.clone(), v.clone()));
                    }
                }
                (Some(_), _) => {
                    let (k, v) = tree.next().expect("peeked")?;
                    out.push((k.to_vec(), v.to_vec()));
                }
            }
        }
        Ok(out)
    }

    /// The u64 ids (big-endian, right after `prefix`) of every key under `prefix` this run wrote.
    pub fn touched_ids(&self, prefix: &[u8]) -> Vec<u64> {
        let range = self.pending.range::<[u8], _>((Bound::Included(prefix), Bound::Unbounded));
        range
            .take_while(|(k, _)| k.starts_with(prefix))
            .filter_map(|(k, _)| crate::codec::parse_key_u64(&k[prefix.len()..]))
            .collect()
    }

    /// Whether this run writes or deletes `key`.
    pub fn touches(&self, key: &[u8]) -> bool {
        self.pending.contains_key(key)
    }

    /// Every key this run writes or deletes, in key order.
    pub fn keys(&self) -> impl Iterator<Item = &Vec<u8>> {
        self.pending.keys()
    }

    /// Keys written or removed so far.
    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// Turns the pending writes into one atomic sled batch.
    pub fn into_batch(self) -> sled::Batch {
        let mut batch = sled::Batch::default();
        for (k, v) in self.pending {
            match v {
                Some(v) => batch.insert(k, v),
                None => batch.remove(k),
            }
        }
        batch
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_see_pending_writes_and_deletes() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let tree = db.open_tree("t").unwrap();
        tree.insert(b"p/1", b"one".to_vec()).unwrap();
        tree.insert(b"p/2", b"two".to_vec()).unwrap();
        let mut ws = WriteSet::new(&tree);
        ws.remove(b"p/1".to_vec());
        ws.insert(b"p/3".to_vec(), b"three".to_vec());
        assert_eq!(ws.get(b"p/1").unwrap(), None);
        assert_eq!(ws.get(b"p/2").unwrap(), Some(b"two".to_vec()));
        let keys: Vec<Vec<u8>> = ws.scan_prefix(b"p/", 10).unwrap().into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, vec![b"p/2".to_vec(), b"p/3".to_vec()]);
        // Nothing reaches the tree until the batch is applied.
        assert!(tree.get(b"p/3").unwrap().is_none());
        tree.apply_batch(ws.into_batch()).unwrap();
        assert!(tree.get(b"p/1").unwrap().is_none());
        assert!(tree.get(b"p/3").unwrap().is_some());
    }

    #[test]
    fn a_scan_merges_in_key_order_and_stops_at_its_limit() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let tree = db.open_tree("t").unwrap();
        for k in [b"p/1", b"p/3", b"p/5", b"p/7", b"q/0"] {
            tree.insert(k, b"tree".to_vec()).unwrap();
        }
        let mut ws = WriteSet::new(&tree);
        ws.remove(b"p/1".to_vec());
        ws.insert(b"p/2".to_vec(), b"new".to_vec());
        ws.insert(b"p/3".to_vec(), b"over".to_vec());
        ws.insert(b"p/9".to_vec(), b"new".to_vec());
        ws.insert(b"o/0".to_vec(), b"other".to_vec());
        let all = ws.scan_prefix(b"p/", usize::MAX).unwrap();
        let expect: Vec<(Vec<u8>, Vec<u8>)> =
            [("p/2", "new"), ("p/3", "over"), ("p/5", "tree"), ("p/7", "tree"), ("p/9", "new")]
                .iter()
                .map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec()))
                .collect();
        assert_eq!(all, expect);
        assert_eq!(ws.scan_prefix(b"p/", 2).unwrap(), expect[..2].to_vec());
        assert_eq!(ws.scan_from(b"p/4", b"p/", 2).unwrap(), expect[2..4].to_vec());
        assert!(ws.scan_prefix(b"r/", 5).unwrap().is_empty());
    }
}
