//! Reused buffers for records the library copies in bulk: packed batches and runs of single
//! records (small records that JavaScript cannot lend in place). Memory fresh from the allocator
//! costs a page fault and a page clear per 4 KiB on first touch (the allocator hands large blocks
//! back to the kernel once they are freed), which cost more than the copy itself. Released
//! buffers are kept, up to `KEPT_BYTES`, and handed out again.

use std::sync::{Mutex, PoisonError};

use bytes::Bytes;

/// Released buffers kept for reuse, at most (in capacity).
const KEPT_BYTES: usize = 8 << 20;
/// Buffers from this size up are pooled (smaller ones are served well by the allocator).
const MIN: usize = 16 << 10;
/// Larger buffers are not kept.
const MAX: usize = 2 << 20;

struct Kept {
    free: Vec<Vec<u8>>,
    bytes: usize,
}

/// Released buffers, kept for reuse.
pub struct Pool {
    kept: Mutex<Kept>,
}

/// The library's pool.
static POOL: Pool = Pool::new();

/// An empty buffer with room for at least `size` bytes (see [`Pool::buffer`]).
pub fn buffer(size: usize) -> Vec<u8> {
    POOL.buffer(size)
}

/// `v` as `Bytes` whose memory comes back to the pool once the last handle is dropped.
pub fn freeze(v: Vec<u8>) -> Bytes {
    POOL.freeze(v)
}

/// A copy of `src` in a pooled buffer.
pub fn copy(src: &[u8]) -> Bytes {
    let mut v = buffer(src.len());
    v.extend_from_slice(src);
    freeze(v)
}

impl Pool {
    const fn new() -> Pool {
        Pool { kept: Mutex::new(Kept { free: Vec::new(), bytes: 0 }) }
    }

    /// An empty buffer with room for at least `size` bytes: the smallest released one that fits
    /// without wasting more than half of `size`, else a new one. New sizes in the pooled range are
    /// rounded up to an eighth of the next power of two (at most a quarter more), so that buffers
    /// fit again.
    pub fn buffer(&self, size: usize) -> Vec<u8> {
        if !(MIN..=MAX).contains(&size) {
            return Vec::with_capacity(size);
        }
        let mut kept = self.kept.lock().unwrap_or_else(PoisonError::into_inner);
        let fits = |v: &Vec<u8>| v.capacity() >= size && v.capacity() <= size + size / 2;
        let best = kept.free.iter().enumerate().filter(|(_, v)| fits(v)).min_by_key(|(_, v)| v.capacity()).map(|(i, _)| i);
        if let Some(i) = best {
            let v = kept.free.swap_remove(i);
            kept.bytes -= v.capacity();
            return v;
        }
        drop(kept);
        let step = size.next_power_of_two() / 8;
        Vec::with_capacity(size.div_ceil(step) * step)
    }

    /// `v` as `Bytes` whose memory comes back to this pool once the last handle is dropped.
    pub fn freeze(&'static self, v: Vec<u8>) -> Bytes {
        if (MIN..=MAX).contains(&v.capacity()) {
            Bytes::from_owner(Pooled(v, self))
        } else {
            Bytes::from(v)
        }
    }

    fn keep(&self, mut v: Vec<u8>) {
        let mut kept = self.kept.lock().unwrap_or_else(PoisonError::into_inner);
        if kept.bytes + v.capacity() <= KEPT_BYTES {
            v.clear();
            kept.bytes += v.capacity();
            kept.free.push(v);
        }
    }
}

struct Pooled(Vec<u8>, &'static Pool);

impl AsRef<[u8]> for Pooled {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        self.1.keep(std::mem::take(&mut self.0));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn released_buffers_are_reused_and_the_pool_is_bounded() {
        static P: Pool = Pool::new();
        let size = 100_000;
        let mut v = P.buffer(size);
        assert_eq!(v.capacity(), 112 << 10, "rounded up to an eighth of the next power of two");
        v.extend_from_slice(&[7u8; 100_000]);
        let a = P.freeze(v);
        let first = a.as_ptr();
        let part = a.slice(10..20);
        drop(a);
        let other = P.buffer(size);
        assert_ne!(other.as_ptr() as *const u8, first, "still referenced by a slice: not reused");
        drop(part);
        let reused = P.buffer(size);
        assert!(reused.capacity() >= size && reused.is_empty());
        assert_eq!(reused.as_ptr() as *const u8, first, "released: handed out again");
        drop(P.freeze(reused));
        let small = P.buffer(40_000);
        assert_ne!(small.as_ptr() as *const u8, first, "not for a size it would waste more than half of");
        // Small and huge buffers are plain allocations, never kept.
        drop(P.freeze(Vec::with_capacity(100)));
        drop(P.freeze(Vec::with_capacity(MAX * 2)));
        assert_eq!(P.kept.lock().unwrap().bytes, 112 << 10, "only the 112 KiB buffer is kept");
        // Never more than KEPT_BYTES kept.
        let many: Vec<Bytes> = (0..64).map(|_| P.freeze(P.buffer(1 << 20))).collect();
        drop(many);
        assert_eq!(P.kept.lock().unwrap().bytes, (112 << 10) + 7 * (1 << 20), "up to KEPT_BYTES");
    }
}
