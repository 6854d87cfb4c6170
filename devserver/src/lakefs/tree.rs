//! Committed object trees: a persistent sorted map from object path to entry, split into
//! immutable shared ranges, in the spirit of lakeFS's metaranges.
//!
//! A commit that touches a few paths rebuilds only the ranges those paths fall into and shares
//! every other range with its parent, so memory grows with the changes, not with
//! `commits × objects`. Diffs skip ranges that both sides share, so comparing a branch with
//! its source costs as much as the changes between them.
//!
//! A tree's content digest is the wrapping sum of one hash per record (path + entry identity),
//! so it does not depend on where range boundaries fall: two trees with the same content have
//! the same digest however they were built. It is the `meta_range_id` of commits.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// A range is split when a rebuild makes it larger than this many records.
const RANGE_SPLIT: usize = 1024;
/// The size of the pieces an oversized range is split into.
const RANGE_CHUNK: usize = 512;

/// One stored object version: what a listing or stat shows, plus the blob it points at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Entry {
    /// Where the data "lives" (`<storage_namespace>/data/<blob>`).
    pub physical_address: String,
    /// Hex MD5 of the content, as lakeFS reports it.
    pub checksum: String,
    /// Hex BLAKE3 of the content: the key of the blob store.
    pub blob: String,
    /// Content length in bytes.
    pub size_bytes: u64,
    /// Upload time, epoch seconds.
    pub mtime: i64,
    /// Content type given at upload.
    pub content_type: String,
    /// User metadata (keys lowercased at upload).
    pub metadata: BTreeMap<String, String>,
}

impl Entry {
    /// lakeFS compares entries by identity: size, checksum, content type and user metadata.
    /// Re-uploading identical bytes with the same type and metadata is not a change.
    pub fn same_identity(&self, other: &Entry) -> bool {
        self.size_bytes == other.size_bytes
            && self.checksum == other.checksum
            && self.content_type == other.content_type
            && self.metadata == other.metadata
    }
}

/// Whether two optional entries are the same for diff and merge purposes.
pub(crate) fn same(left: Option<&Arc<Entry>>, right: Option<&Arc<Entry>>) -> bool {
    match (left, right) {
        (None, None) => true,
        (Some(a), Some(b)) => Arc::ptr_eq(a, b) || a.same_identity(b),
        _ => false,
    }
}

/// Path keys are shared between ranges of different trees, hence `Arc<str>`.
pub(crate) type Key = Arc<str>;

/// A boundary-independent content digest: the wrapping sum of per-record hashes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Digest([u64; 4]);

impl Digest {
    fn of_record(key: &str, entry: &Entry) -> Digest {
        let mut hasher = blake3::Hasher::new();
        let mut field = |bytes: &[u8]| {
            hasher.update(&(bytes.len() as u64).to_le_bytes());
            hasher.update(bytes);
        };
        field(key.as_bytes());
        field(&entry.size_bytes.to_le_bytes());
        field(entry.checksum.as_bytes());
        field(entry.content_type.as_bytes());
        field(&(entry.metadata.len() as u64).to_le_bytes());
        for (name, value) in &entry.metadata {
            field(name.as_bytes());
            field(value.as_bytes());
        }
        let bytes = *hasher.finalize().as_bytes();
        let mut lanes = [0u64; 4];
        for (lane, chunk) in lanes.iter_mut().zip(bytes.chunks_exact(8)) {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            *lane = u64::from_le_bytes(word);
        }
        Digest(lanes)
    }

    fn add(self, other: Digest) -> Digest {
        let mut lanes = self.0;
        for (lane, add) in lanes.iter_mut().zip(other.0) {
            *lane = lane.wrapping_add(add);
        }
        Digest(lanes)
    }

    fn to_hex(self) -> String {
        self.0.iter().map(|lane| format!("{lane:016x}")).collect()
    }
}

/// An immutable, non-empty, sorted run of records.
#[derive(Debug)]
pub(crate) struct Range {
    records: Vec<(Key, Arc<Entry>)>,
    digest: Digest,
}

impl Range {
    /// Builds a range from sorted, unique records. Callers guarantee the order.
    pub fn new(records: Vec<(Key, Arc<Entry>)>) -> Range {
        let digest = records.iter().fold(Digest::default(), |sum, (key, entry)| {
            sum.add(Digest::of_record(key, entry))
        });
        Range { records, digest }
    }

    /// The records, sorted by path.
    pub fn records(&self) -> &[(Key, Arc<Entry>)] {
        &self.records
    }

    fn first_key(&self) -> &str {
        self.records.first().map_or("", |(key, _)| key)
    }

    fn last_key(&self) -> &str {
        self.records.last().map_or("", |(key, _)| key)
    }
}

/// One path whose entry differs between two trees.
#[derive(Debug, Clone)]
pub(crate) struct Change {
    /// The object path.
    pub key: Key,
    /// The entry on the left side, if any.
    pub left: Option<Arc<Entry>>,
    /// The entry on the right side, if any.
    pub right: Option<Arc<Entry>>,
}

/// A persistent sorted map from path to entry. Cloning is cheap (ranges are shared).
#[derive(Debug, Clone, Default)]
pub(crate) struct Tree {
    ranges: Vec<Arc<Range>>,
    digest: Digest,
    len: usize,
}

impl Tree {
    /// Builds a tree from ranges that are each sorted and ordered among themselves, or
    /// `None` when they are not (corrupt persisted data).
    pub fn from_ranges(ranges: Vec<Arc<Range>>) -> Option<Tree> {
        let mut previous: Option<&str> = None;
        for range in &ranges {
            if range.records.is_empty() {
                return None;
            }
            for (key, _) in &range.records {
                if previous.is_some_and(|prev| prev >= &**key) {
                    return None;
                }
                previous = Some(key);
            }
        }
        Some(Tree::assemble(ranges))
    }

    fn assemble(ranges: Vec<Arc<Range>>) -> Tree {
        let digest = ranges
            .iter()
            .fold(Digest::default(), |sum, range| sum.add(range.digest));
        let len = ranges.iter().map(|range| range.records.len()).sum();
        Tree {
            ranges,
            digest,
            len,
        }
    }

    /// The shared ranges, for persistence and garbage collection.
    pub fn ranges(&self) -> &[Arc<Range>] {
        &self.ranges
    }

    /// Number of objects.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether two trees hold the same paths with identical entries.
    pub fn same_content(&self, other: &Tree) -> bool {
        self.len == other.len && self.digest == other.digest
    }

    /// The content address reported as a commit's `meta_range_id`; `""` for an empty tree,
    /// like the first commit of a lakeFS repository.
    pub fn meta_range_id(&self) -> String {
        if self.len == 0 {
            String::new()
        } else {
            self.digest.to_hex()
        }
    }

    /// The entry at `key`.
    pub fn get(&self, key: &str) -> Option<&Arc<Entry>> {
        let index = self.ranges.partition_point(|range| range.last_key() < key);
        let range = self.ranges.get(index)?;
        let position = range
            .records
            .binary_search_by(|(probe, _)| (**probe).cmp(key))
            .ok()?;
        range.records.get(position).map(|(_, entry)| entry)
    }

    /// Records in path order starting at `start`.
    pub fn iter_from<'a>(&'a self, start: Bound<&str>) -> TreeIter<'a> {
        let before_start = |key: &str| match start {
            Bound::Included(bound) => key < bound,
            Bound::Excluded(bound) => key <= bound,
            Bound::Unbounded => false,
        };
        let range = self
            .ranges
            .partition_point(|range| before_start(range.last_key()));
        let record = self.ranges.get(range).map_or(0, |range| {
            range.records.partition_point(|(key, _)| before_start(key))
        });
        TreeIter {
            tree: self,
            range,
            record,
        }
    }

    /// Returns a new tree with `changes` applied (`None` deletes). `changes` must be sorted by
    /// path without duplicates. Setting an entry whose identity equals the existing one keeps
    /// the existing entry, so untouched ranges stay shared and the digest stays equal.
    pub fn apply(&self, changes: &[(Key, Option<Arc<Entry>>)]) -> Tree {
        if changes.is_empty() {
            return self.clone();
        }
        if self.ranges.is_empty() {
            let records: Vec<(Key, Arc<Entry>)> = changes
                .iter()
                .filter_map(|(key, entry)| entry.clone().map(|entry| (key.clone(), entry)))
                .collect();
            let mut ranges = Vec::new();
            push_chunks(&mut ranges, records);
            return Tree::assemble(ranges);
        }
        let mut ranges = Vec::with_capacity(self.ranges.len() + 1);
        let mut next_change = 0;
        for (index, range) in self.ranges.iter().enumerate() {
            // Each range owns the key span up to the next range's first key; the first range
            // also takes keys below its own first key, the last one everything above.
            let upper = self.ranges.get(index + 1).map(|next| next.first_key());
            let start = next_change;
            while next_change < changes.len()
                && upper.is_none_or(|upper| &*changes[next_change].0 < upper)
            {
                next_change += 1;
            }
            let slice = &changes[start..next_change];
            if slice.is_empty() {
                ranges.push(range.clone());
                continue;
            }
            match merge_records(&range.records, slice) {
                None => ranges.push(range.clone()),
                Some(records) => push_chunks(&mut ranges, records),
            }
        }
        Tree::assemble(ranges)
    }

    /// Every path whose entry differs between `self` (left) and `other` (right), sorted.
    /// Ranges shared by both trees are skipped without looking inside.
    pub fn diff(&self, other: &Tree) -> Vec<Change> {
        let mut changes = Vec::new();
        let mut left = Cursor::new(self);
        let mut right = Cursor::new(other);
        loop {
            if left.record == 0
                && right.record == 0
                && let (Some(l), Some(r)) =
                    (self.ranges.get(left.range), other.ranges.get(right.range))
                && Arc::ptr_eq(l, r)
            {
                left.range += 1;
                right.range += 1;
                continue;
            }
            match (left.peek(), right.peek()) {
                (None, None) => break,
                (Some((key, entry)), None) => {
                    changes.push(Change {
                        key: key.clone(),
                        left: Some(entry.clone()),
                        right: None,
                    });
                    left.advance();
                }
                (None, Some((key, entry))) => {
                    changes.push(Change {
                        key: key.clone(),
                        left: None,
                        right: Some(entry.clone()),
                    });
                    right.advance();
                }
                (Some((lkey, lentry)), Some((rkey, rentry))) => match lkey.cmp(rkey) {
                    Ordering::Less => {
                        changes.push(Change {
                            key: lkey.clone(),
                            left: Some(lentry.clone()),
                            right: None,
                        });
                        left.advance();
                    }
                    Ordering::Greater => {
                        changes.push(Change {
                            key: rkey.clone(),
                            left: None,
                            right: Some(rentry.clone()),
                        });
                        right.advance();
                    }
                    Ordering::Equal => {
                        if !same(Some(lentry), Some(rentry)) {
                            changes.push(Change {
                                key: lkey.clone(),
                                left: Some(lentry.clone()),
                                right: Some(rentry.clone()),
                            });
                        }
                        left.advance();
                        right.advance();
                    }
                },
            }
        }
        changes
    }
}

/// Merges sorted changes into sorted records; `None` when nothing actually changes.
fn merge_records(
    records: &[(Key, Arc<Entry>)],
    changes: &[(Key, Option<Arc<Entry>>)],
) -> Option<Vec<(Key, Arc<Entry>)>> {
    let mut out = Vec::with_capacity(records.len() + changes.len());
    let mut changed = false;
    let mut existing = records.iter().peekable();
    for (key, change) in changes {
        while let Some((record_key, _)) = existing.peek() {
            if **record_key < **key {
                if let Some(record) = existing.next() {
                    out.push(record.clone());
                }
            } else {
                break;
            }
        }
        let current = existing
            .next_if(|(record_key, _)| **record_key == **key)
            .map(|(_, entry)| entry);
        match (current, change) {
            (Some(current), Some(new)) if current.same_identity(new) => {
                out.push((key.clone(), current.clone()));
            }
            (_, Some(new)) => {
                changed = true;
                out.push((key.clone(), new.clone()));
            }
            (Some(_), None) => changed = true,
            (None, None) => {}
        }
    }
    out.extend(existing.cloned());
    changed.then_some(out)
}

fn push_chunks(ranges: &mut Vec<Arc<Range>>, records: Vec<(Key, Arc<Entry>)>) {
    if records.is_empty() {
        return;
    }
    if records.len() <= RANGE_SPLIT {
        ranges.push(Arc::new(Range::new(records)));
        return;
    }
    for chunk in records.chunks(RANGE_CHUNK) {
        ranges.push(Arc::new(Range::new(chunk.to_vec())));
    }
}

/// A position inside a tree: range index and record index within it.
struct Cursor<'a> {
    tree: &'a Tree,
    range: usize,
    record: usize,
}

impl<'a> Cursor<'a> {
    fn new(tree: &'a Tree) -> Cursor<'a> {
        Cursor {
            tree,
            range: 0,
            record: 0,
        }
    }

    fn peek(&self) -> Option<&'a (Key, Arc<Entry>)> {
        self.tree.ranges.get(self.range)?.records.get(self.record)
    }

    fn advance(&mut self) {
        self.record += 1;
        if let Some(range) = self.tree.ranges.get(self.range)
            && self.record >= range.records.len()
        {
            self.range += 1;
            self.record = 0;
        }
    }
}

/// Iterator over a tree's records in path order.
pub(crate) struct TreeIter<'a> {
    tree: &'a Tree,
    range: usize,
    record: usize,
}

impl<'a> Iterator for TreeIter<'a> {
    type Item = (&'a Key, &'a Arc<Entry>);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let range = self.tree.ranges.get(self.range)?;
            if let Some((key, entry)) = range.records.get(self.record) {
                self.record += 1;
                return Some((key, entry));
            }
            self.range += 1;
            self.record = 0;
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn entry(content: &str) -> Arc<Entry> {
        Arc::new(Entry {
            physical_address: format!("mem://x/data/{content}"),
            checksum: format!("md5-{content}"),
            blob: format!("b3-{content}"),
            size_bytes: content.len() as u64,
            mtime: 1,
            content_type: "application/octet-stream".into(),
            metadata: BTreeMap::new(),
        })
    }

    fn puts(
        keys: impl IntoIterator<Item = String>,
        content: &str,
    ) -> Vec<(Key, Option<Arc<Entry>>)> {
        let mut changes: Vec<(Key, Option<Arc<Entry>>)> = keys
            .into_iter()
            .map(|key| (Key::from(key.as_str()), Some(entry(content))))
            .collect();
        changes.sort_by(|a, b| a.0.cmp(&b.0));
        changes
    }

    fn keys(tree: &Tree) -> Vec<String> {
        tree.iter_from(Bound::Unbounded)
            .map(|(key, _)| key.to_string())
            .collect()
    }

    #[test]
    fn apply_get_iterate_and_delete_across_many_ranges() {
        let tree = Tree::default().apply(&puts((0..5000).map(|i| format!("k{i:05}")), "v"));
        assert_eq!(tree.len(), 5000);
        assert!(tree.ranges().len() > 5, "large trees are split into ranges");
        assert!(tree.get("k04999").is_some());
        assert!(tree.get("k05000").is_none());
        assert!(tree.get("a").is_none());
        let from: Vec<String> = tree
            .iter_from(Bound::Excluded("k01023"))
            .take(2)
            .map(|(key, _)| key.to_string())
            .collect();
        assert_eq!(from, ["k01024", "k01025"]);
        let deleted = tree.apply(&[(Key::from("k00000"), None), (Key::from("zzz"), None)]);
        assert_eq!(deleted.len(), 4999);
        assert_eq!(keys(&deleted)[0], "k00001");
        // Untouched ranges are shared with the parent tree.
        let shared = deleted
            .ranges()
            .iter()
            .filter(|range| tree.ranges().iter().any(|old| Arc::ptr_eq(old, range)))
            .count();
        assert_eq!(shared, deleted.ranges().len() - 1);
    }

    #[test]
    fn digest_is_independent_of_how_the_tree_was_built() {
        let all = Tree::default().apply(&puts((0..3000).map(|i| format!("p{i}")), "x"));
        let mut stepwise = Tree::default();
        for chunk in (0..3000).collect::<Vec<_>>().chunks(700) {
            stepwise = stepwise.apply(&puts(chunk.iter().map(|i| format!("p{i}")), "x"));
        }
        assert!(all.same_content(&stepwise));
        assert_eq!(all.meta_range_id(), stepwise.meta_range_id());
        assert_eq!(all.meta_range_id().len(), 64);
        assert_eq!(Tree::default().meta_range_id(), "");
        let changed = all.apply(&puts(["p7".to_string()], "y"));
        assert!(!changed.same_content(&all));
    }

    #[test]
    fn identical_put_is_not_a_change() {
        let tree = Tree::default().apply(&puts(["a".to_string()], "v"));
        let mut again = (*entry("v")).clone();
        again.mtime = 99;
        again.physical_address = "elsewhere".into();
        let same_tree = tree.apply(&[(Key::from("a"), Some(Arc::new(again)))]);
        assert!(Arc::ptr_eq(&tree.ranges()[0], &same_tree.ranges()[0]));
        assert_eq!(same_tree.get("a").map(|e| e.mtime), Some(1));
    }

    #[test]
    fn diff_reports_added_removed_changed_and_skips_shared_ranges() {
        let base = Tree::default().apply(&puts((0..4000).map(|i| format!("f{i:04}")), "v"));
        let right = base.apply(&[
            (Key::from("a-new"), Some(entry("n"))),
            (Key::from("f0100"), None),
            (Key::from("f3000"), Some(entry("changed"))),
        ]);
        let diff = base.diff(&right);
        let summary: Vec<(String, bool, bool)> = diff
            .iter()
            .map(|c| (c.key.to_string(), c.left.is_some(), c.right.is_some()))
            .collect();
        assert_eq!(
            summary,
            [
                ("a-new".to_string(), false, true),
                ("f0100".to_string(), true, false),
                ("f3000".to_string(), true, true),
            ]
        );
        assert!(base.diff(&base).is_empty());
        assert_eq!(Tree::default().diff(&base).len(), 4000);
    }

    #[test]
    fn from_ranges_rejects_unsorted_data() {
        let a = Arc::new(Range::new(vec![(Key::from("b"), entry("1"))]));
        let b = Arc::new(Range::new(vec![(Key::from("a"), entry("1"))]));
        assert!(Tree::from_ranges(vec![a.clone(), b.clone()]).is_none());
        assert!(Tree::from_ranges(vec![b, a]).is_some());
        assert!(Tree::from_ranges(vec![Arc::new(Range::new(Vec::new()))]).is_none());
    }
}
