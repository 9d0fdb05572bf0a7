//! The records of one protobuf / JSON batch request, in one of two forms:
//! - handles: one `Bytes` per record (the caller's memory used in place, or its own copies);
//! - packed: records copied into one buffer already in wire form, the `repeated bytes records = 1`
//!   entries of `ProtoEncodedRecordBatch` / `JsonRecordBatch` (key, length, bytes, back to back).
//!   Small records copied at ingest take this form: one allocation and one handle per batch, and
//!   the encoder sends the list as one piece instead of writing a header per record.

use std::sync::Arc;

use bytes::Bytes;
use prost::encoding::{decode_varint, encoded_len_varint, key_len};

/// The key of field 1, length-delimited.
const ENTRY_KEY: u8 = 0x0a;

#[derive(Clone, Debug)]
pub enum Batch {
    Handles(Arc<[Bytes]>),
    Packed(Packed),
}

/// Records packed in wire form; only [`Batch::packed`] makes one, so the list is well formed.
#[derive(Clone, Debug)]
pub struct Packed {
    list: Bytes,
    count: usize,
    bytes: usize,
    /// The longest record's length.
    longest: usize,
}

impl Packed {
    /// The encoded list: key, length and bytes of each record, back to back.
    pub fn list(&self) -> &Bytes {
        &self.list
    }
}

impl From<Vec<Bytes>> for Batch {
    fn from(v: Vec<Bytes>) -> Self {
        Batch::Handles(v.into())
    }
}

impl From<Arc<[Bytes]>> for Batch {
    fn from(v: Arc<[Bytes]>) -> Self {
        Batch::Handles(v)
    }
}

/// Bytes of one list entry holding a record of `len` bytes.
pub fn entry_len(len: usize) -> usize {
    key_len(1) + encoded_len_varint(len as u64) + len
}

impl Batch {
    /// Copies `records` into one packed buffer (from the pool: see `pool.rs`).
    pub fn packed<'a>(records: impl Iterator<Item = &'a [u8]> + Clone) -> Batch {
        let (mut count, mut bytes, mut size, mut longest) = (0, 0, 0, 0);
        for r in records.clone() {
            count += 1;
            bytes += r.len();
            size += entry_len(r.len());
            longest = longest.max(r.len());
        }
        let mut list = crate::pool::buffer(size);
        for r in records {
            // The key and the length's varint byte by byte (a copy call costs more for 2 bytes).
            list.push(ENTRY_KEY);
            let mut len = r.len();
            while len >= 0x80 {
                list.push((len as u8) | 0x80);
                len >>= 7;
            }
            list.push(len as u8);
            list.extend_from_slice(r);
        }
        Batch::Packed(Packed { list: crate::pool::freeze(list), count, bytes, longest })
    }

    /// The longest record's length (0 for an empty batch).
    pub fn longest(&self) -> usize {
        match self {
            Batch::Handles(r) => r.iter().map(Bytes::len).max().unwrap_or(0),
            Batch::Packed(p) => p.longest,
        }
    }

    /// Records in the batch.
    pub fn len(&self) -> usize {
        match self {
            Batch::Handles(r) => r.len(),
            Batch::Packed(p) => p.count,
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Record bytes (without the list's keys and lengths).
    pub fn byte_len(&self) -> usize {
        match self {
            Batch::Handles(r) => r.iter().map(Bytes::len).sum(),
            Batch::Packed(p) => p.bytes,
        }
    }
    /// Bytes of the encoded list.
    pub fn list_len(&self) -> usize {
        match self {
            Batch::Handles(r) => r.iter().map(|b| entry_len(b.len())).sum(),
            Batch::Packed(p) => p.list.len(),
        }
    }
    /// The records, in order, borrowed.
    pub fn slices(&self) -> Slices<'_> {
        match self {
            Batch::Handles(r) => Slices::Handles(r.iter()),
            Batch::Packed(p) => Slices::Packed(&p.list),
        }
    }
    /// The records as handles (slices of the packed buffer: no copy).
    pub fn to_vec(&self) -> Vec<Bytes> {
        match self {
            Batch::Handles(r) => r.to_vec(),
            Batch::Packed(p) => self.slices().map(|s| p.list.slice_ref(s)).collect(),
        }
    }
    /// Consecutive batches of the same records, each within `limit` bytes counting every record
    /// as its length plus `per_record` (a record over that alone gets a batch of its own). A
    /// packed batch is cut at record boundaries into slices of its list (no copy).
    pub fn split(&self, limit: usize, per_record: usize) -> Vec<Batch> {
        // (first record, the entries' byte range in the list, records, record bytes, longest) per part
        let mut parts: Vec<(usize, std::ops::Range<usize>, usize, usize, usize)> = Vec::new();
        let (mut first, mut start, mut at, mut size, mut bytes, mut longest) = (0, 0, 0, 0, 0, 0);
        for (i, r) in self.slices().enumerate() {
            let add = r.len() + per_record;
            if i > first && size + add > limit {
                parts.push((first, start..at, i - first, bytes, longest));
                (first, start, size, bytes, longest) = (i, at, 0, 0, 0);
            }
            size += add;
            bytes += r.len();
            longest = longest.max(r.len());
            at += entry_len(r.len());
        }
        parts.push((first, start..at, self.len() - first, bytes, longest));
        parts
            .into_iter()
            .map(|(first, range, count, bytes, longest)| match self {
                Batch::Handles(h) => Batch::Handles(h[first..first + count].into()),
                Batch::Packed(p) => Batch::Packed(Packed { list: p.list.slice(range), count, bytes, longest }),
            })
            .collect()
    }

    /// The same records in memory of their own.
    pub fn copied(&self) -> Batch {
        match self {
            Batch::Handles(r) => Batch::Handles(r.iter().map(|b| Bytes::copy_from_slice(b)).collect()),
            Batch::Packed(p) => Batch::Packed(Packed { list: Bytes::copy_from_slice(&p.list), ..p.clone() }),
        }
    }
}

/// Iterator over a batch's records.
pub enum Slices<'a> {
    Handles(std::slice::Iter<'a, Bytes>),
    Packed(&'a [u8]),
}

impl<'a> Iterator for Slices<'a> {
    type Item = &'a [u8];
    fn next(&mut self) -> Option<&'a [u8]> {
        match self {
            Slices::Handles(it) => it.next().map(|b| &b[..]),
            Slices::Packed(rest) => {
                let (&key, mut tail) = rest.split_first()?;
                debug_assert_eq!(key, ENTRY_KEY);
                // Built by `Batch::packed`: well formed by construction.
                let len = decode_varint(&mut tail).expect("packed batch entry length") as usize;
                let (record, after) = tail.split_at(len);
                *rest = after;
                Some(record)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packed_batches_hold_the_records_in_wire_form() {
        let records: Vec<Vec<u8>> = vec![vec![], b"a".to_vec(), vec![b'x'; 127], vec![b'y'; 128], vec![b'z'; 70_000]];
        let b = Batch::packed(records.iter().map(|r| &r[..]));
        assert_eq!(b.len(), 5);
        assert_eq!(b.byte_len(), 1 + 127 + 128 + 70_000);
        assert_eq!(b.longest(), 70_000);
        let Batch::Packed(p) = &b else { panic!() };
        assert_eq!(&p.list()[..4], &[0x0a, 0x00, 0x0a, 0x01]);
        assert_eq!(b.list_len(), records.iter().map(|r| entry_len(r.len())).sum::<usize>());
        let back: Vec<Vec<u8>> = b.slices().map(<[u8]>::to_vec).collect();
        assert_eq!(back, records);
        let handles = b.to_vec();
        assert_eq!(handles.iter().map(|h| h.to_vec()).collect::<Vec<_>>(), records);
        assert!(std::ptr::eq(handles[4].as_ptr(), b.slices().nth(4).unwrap().as_ptr()), "handles share the packed buffer");
        // The handle form encodes to the same list.
        let h = Batch::from(records.iter().map(|r| Bytes::from(r.clone())).collect::<Vec<_>>());
        assert_eq!(h.list_len(), b.list_len());
        assert_eq!(b.copied().to_vec(), handles);
    }

    #[test]
    fn splitting_cuts_at_record_boundaries_in_both_forms() {
        let records: Vec<Bytes> = (0..50u8).map(|i| Bytes::from(vec![i; 10 + 7 * i as usize])).collect();
        for batch in [Batch::from(records.clone()), Batch::packed(records.iter().map(|r| &r[..]))] {
            let parts = batch.split(400, 8);
            assert!(parts.len() > 5);
            let mut all = Vec::new();
            for p in &parts {
                let size: usize = p.slices().map(|r| r.len() + 8).sum();
                assert!(size <= 400 || p.len() == 1, "a part of {size} bytes");
                assert_eq!(p.byte_len(), p.slices().map(<[u8]>::len).sum::<usize>());
                assert_eq!(p.longest(), p.slices().map(<[u8]>::len).max().unwrap());
                assert_eq!(p.list_len(), p.slices().map(|r| entry_len(r.len())).sum::<usize>());
                assert_eq!(matches!(p, Batch::Packed(_)), matches!(batch, Batch::Packed(_)));
                all.extend(p.to_vec());
            }
            assert_eq!(all, records);
        }
        // A record over the limit travels alone.
        let big = Batch::from(vec![Bytes::from(vec![1u8; 10]), Bytes::from(vec![2u8; 500]), Bytes::from(vec![3u8; 10])]);
        assert_eq!(big.split(100, 8).iter().map(Batch::len).collect::<Vec<_>>(), vec![1, 1, 1]);
    }
}
