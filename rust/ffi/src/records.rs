//! Caller memory as `Bytes`: used in place until the last handle is dropped, then released
//! exactly once (by the caller's callback, or into the stream's release sink).

use std::ffi::c_void;
use std::sync::Arc;

use bytes::Bytes;
use zerobus_core::{Batch, ZerobusError};

use crate::sink::{is_sink_release, SinkQueue};
use crate::slice;

/// Called with the context given at ingest when Rust no longer references the record memory.
pub type ZerobusReleaseFn = Option<unsafe extern "C" fn(ctx: *mut c_void)>;

/// Who gets the memory back. Dropping it releases: exactly once, whatever happens to the call.
pub(crate) enum Release {
    Callback { f: unsafe extern "C" fn(*mut c_void), ctx: *mut c_void },
    Token { sink: &'static SinkQueue, token: u64 },
}
// SAFETY: the C contract says `release` may be called from any thread.
unsafe impl Send for Release {}
unsafe impl Sync for Release {}
impl Drop for Release {
    fn drop(&mut self) {
        match self {
            Release::Callback { f, ctx } => unsafe { f(*ctx) },
            Release::Token { sink, token } => sink.push(*token),
        }
    }
}

impl Release {
    /// The release of an ingest call: none (copy the bytes), the stream's sink (for
    /// `zerobus_sink_release_fn()`, `ctx` being the token), or the caller's callback.
    pub(crate) fn of(release: ZerobusReleaseFn, ctx: *mut c_void, sink: Option<&'static SinkQueue>) -> Result<Option<Release>, ZerobusError> {
        match release {
            None => Ok(None),
            Some(f) if is_sink_release(f) => match sink {
                Some(sink) => Ok(Some(Release::Token { sink, token: ctx as u64 })),
                None => Err(ZerobusError::invalid("zerobus_sink_release_fn() needs a stream opened with a sink")),
            },
            Some(f) => Ok(Some(Release::Callback { f, ctx })),
        }
    }
}

/// Borrowed caller memory; the release runs when the last `Bytes` handle to it is dropped.
struct Borrowed<R> {
    ptr: *const u8,
    len: usize,
    _release: R,
}
unsafe impl<R: Send> Send for Borrowed<R> {}
impl<R> AsRef<[u8]> for Borrowed<R> {
    fn as_ref(&self) -> &[u8] {
        unsafe { slice(self.ptr, self.len) }
    }
}

fn null_data(what: &str, len: usize) -> ZerobusError {
    ZerobusError::invalid(format!("{what} is NULL but its length is {len}"))
}

fn non_empty(count: usize) -> Result<(), ZerobusError> {
    match count {
        0 => Err(ZerobusError::invalid("a batch needs at least one record (count is 0)")),
        _ => Ok(()),
    }
}

/// Copies of small records are cut from per-thread chunks of this size: no allocation per
/// record (each copy shares its chunk's reference count), and a chunk is freed once every
/// record cut from it is released, which acknowledgements do in order.
const CHUNK: usize = 64 * 1024;
/// Larger copies get an allocation of their own.
const CHUNKED_MAX: usize = 4096;

thread_local! {
    static CHUNKS: std::cell::RefCell<bytes::BytesMut> = std::cell::RefCell::new(bytes::BytesMut::new());
}

/// A copy of caller memory (the caller keeps its own).
pub(crate) fn copied(src: &[u8]) -> Bytes {
    if src.is_empty() {
        return Bytes::new();
    }
    if src.len() > CHUNKED_MAX {
        return Bytes::copy_from_slice(src);
    }
    CHUNKS.with(|c| {
        let mut chunk = c.borrow_mut();
        if chunk.capacity() < src.len() {
            *chunk = bytes::BytesMut::with_capacity(CHUNK);
        }
        chunk.extend_from_slice(src);
        chunk.split().freeze()
    })
}

/// One record. With no release the bytes are copied now.
pub(crate) unsafe fn bytes_single(ptr: *const u8, len: usize, release: Option<Release>) -> Result<Bytes, ZerobusError> {
    if ptr.is_null() && len > 0 {
        return Err(null_data("data", len));
    }
    Ok(match release {
        None => copied(slice(ptr, len)),
        Some(r) => Bytes::from_owner(Borrowed { ptr, len, _release: r }),
    })
}

/// Records of a batch: `count` pointers (64-bit each) and `count` 32-bit lengths, sharing one
/// release. With no release the records are copied now, packed into one buffer.
pub(crate) unsafe fn bytes_batch(
    ptrs: *const *const u8,
    lens: *const u32,
    count: usize,
    release: Option<Release>,
) -> Result<Batch, ZerobusError> {
    non_empty(count)?;
    if ptrs.is_null() || lens.is_null() {
        return Err(ZerobusError::invalid(format!("records and lens must not be NULL (count is {count})")));
    }
    let ptrs = std::slice::from_raw_parts(ptrs, count);
    let lens = std::slice::from_raw_parts(lens, count);
    if let Some(i) = ptrs.iter().zip(lens).position(|(p, l)| p.is_null() && *l > 0) {
        return Err(null_data(&format!("record {i} of the batch"), lens[i] as usize));
    }
    Ok(match release {
        None => Batch::packed(ptrs.iter().zip(lens).map(|(p, l)| slice(*p, *l as usize))),
        Some(r) => {
            let rel = Arc::new(r);
            let handles: Vec<Bytes> = ptrs
                .iter()
                .zip(lens)
                .map(|(p, l)| Bytes::from_owner(Borrowed { ptr: *p, len: *l as usize, _release: rel.clone() }))
                .collect();
            handles.into()
        }
    })
}

/// Records packed back to back in one buffer, with `count` 32-bit lengths; one release. With no
/// release the records are copied now (into a packed batch).
pub(crate) unsafe fn bytes_packed(
    data: *const u8,
    len: usize,
    lens: *const u32,
    count: usize,
    release: Option<Release>,
) -> Result<Batch, ZerobusError> {
    let lens = packed_lens(data, len, lens, count)?;
    let Some(release) = release else {
        return Ok(Batch::packed(cut(slice(data, len), lens)));
    };
    let whole = Bytes::from_owner(Borrowed { ptr: data, len, _release: release });
    let handles: Vec<Bytes> = cut(&whole, lens).map(|r| whole.slice_ref(r)).collect();
    Ok(handles.into())
}

/// Records packed back to back in one buffer, copied now into one allocation that they share
/// (each its own request: freed once the last of them is released).
pub(crate) unsafe fn bytes_each(data: *const u8, len: usize, lens: *const u32, count: usize) -> Result<Vec<Bytes>, ZerobusError> {
    let lens = packed_lens(data, len, lens, count)?;
    let whole = zerobus_core::pool::copy(slice(data, len));
    Ok(cut(&whole, lens).map(|r| whole.slice_ref(r)).collect())
}

/// The `count` lengths of a packed buffer, checked against it.
unsafe fn packed_lens<'a>(data: *const u8, len: usize, lens: *const u32, count: usize) -> Result<&'a [u32], ZerobusError> {
    non_empty(count)?;
    if lens.is_null() {
        return Err(ZerobusError::invalid(format!("lens must not be NULL (count is {count})")));
    }
    let lens = std::slice::from_raw_parts(lens, count);
    let total: u64 = lens.iter().map(|l| *l as u64).sum();
    if total != len as u64 {
        return Err(ZerobusError::invalid(format!(
            "packed record lengths add up to {total} bytes but the buffer has {len}"
        )));
    }
    if data.is_null() && len > 0 {
        return Err(null_data("data", len));
    }
    Ok(lens)
}

/// `whole` cut into records of `lens` bytes (which add up to its length).
fn cut<'a>(whole: &'a [u8], lens: &'a [u32]) -> impl Iterator<Item = &'a [u8]> + Clone + 'a {
    let mut at = 0usize;
    lens.iter().map(move |l| {
        let r = &whole[at..at + *l as usize];
        at += *l as usize;
        r
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Counts into the counter its context points at (one per test: tests run in parallel).
    unsafe extern "C" fn count_release(ctx: *mut c_void) {
        (*(ctx as *const AtomicUsize)).fetch_add(1, Ordering::SeqCst);
    }
    fn rel(counter: &'static AtomicUsize) -> Option<Release> {
        Release::of(Some(count_release), counter as *const AtomicUsize as *mut c_void, None).unwrap()
    }

    /// A small deterministic generator (xorshift64*): no dependency, reproducible by seed.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n.max(1)
        }
    }

    #[test]
    fn packed_batches_with_random_lengths_split_exactly_or_fail_cleanly() {
        let seed = std::env::var("ZEROBUS_FUZZ_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0x5eed_u64);
        let iters = std::env::var("ZEROBUS_FUZZ_ITERS").ok().and_then(|s| s.parse().ok()).unwrap_or(20_000u64);
        let mut rng = Rng(seed | 1);
        let data: Vec<u8> = (0..4096u32).map(|i| (i * 31 % 251) as u8).collect();
        static RELEASED: AtomicUsize = AtomicUsize::new(0);
        let mut calls = 0;
        for it in 0..iters {
            let count = rng.below(12) as usize;
            let mut lens: Vec<u32> = (0..count)
                .map(|_| match rng.below(8) {
                    0 => u32::MAX - rng.below(3) as u32,
                    1 => 0,
                    _ => rng.below(600) as u32,
                })
                .collect();
            let sum: u64 = lens.iter().map(|l| *l as u64).sum();
            let len = match rng.below(4) {
                0 => rng.below(data.len() as u64 + 1) as usize,
                _ if sum <= data.len() as u64 => sum as usize,
                _ => data.len(),
            };
            if rng.below(10) == 0 && !lens.is_empty() {
                lens.pop(); // count shorter than the lengths written
            }
            let lens_ptr = if rng.below(20) == 0 { std::ptr::null() } else { lens.as_ptr() };
            let r = std::panic::catch_unwind(|| unsafe { bytes_packed(data.as_ptr(), len, lens_ptr, lens.len(), rel(&RELEASED)) });
            calls += 1;
            let r = r.unwrap_or_else(|_| panic!("panic at iteration {it} (seed {seed})"));
            // Without a release the records are copied into a packed batch: the same outcome.
            let copied = std::panic::catch_unwind(|| unsafe { bytes_packed(data.as_ptr(), len, lens_ptr, lens.len(), None) })
                .unwrap_or_else(|_| panic!("panic at iteration {it} (seed {seed}, copying)"));
            for r in [r, copied] {
                match r {
                    Ok(parts) => {
                        assert_eq!(parts.len(), lens.len(), "seed {seed} iteration {it}");
                        let mut at = 0;
                        for (p, l) in parts.slices().zip(&lens) {
                            assert_eq!(p.len(), *l as usize);
                            assert_eq!(p, &data[at..at + p.len()]);
                            at += p.len();
                        }
                        assert_eq!(at, len);
                    }
                    Err(e) => assert_eq!(e.code, zerobus_core::ErrorCode::InvalidArgument, "seed {seed} iteration {it}: {e}"),
                }
            }
        }
        assert_eq!(RELEASED.load(Ordering::SeqCst), calls, "every call releases exactly once, success or not");
    }

    #[test]
    fn the_sink_marker_routes_tokens_into_the_sink() {
        // a static, not Box::leak: LeakSanitizer (scripts/asan.sh) reports what no global reaches
        static QUEUE: SinkQueue = SinkQueue::new();
        let q: &'static SinkQueue = &QUEUE;
        let marker: unsafe extern "C" fn(*mut c_void) = unsafe { std::mem::transmute(crate::sink::zerobus_sink_release_fn()) };
        let r = Release::of(Some(marker), 7 as *mut c_void, Some(q)).unwrap();
        assert!(matches!(r, Some(Release::Token { token: 7, .. })));
        let data = [1u8; 10];
        let b = unsafe { bytes_single(data.as_ptr(), 10, r).unwrap() };
        let c = b.clone();
        drop(b);
        assert!(q.is_empty());
        drop(c);
        assert_eq!(q.pop(), Some(7));
        assert!(Release::of(Some(marker), 8 as *mut c_void, None).is_err(), "no sink: refused");
    }

    #[test]
    fn copies_stay_exact_across_chunks() {
        let mut kept = Vec::new();
        for round in 0..200 {
            for n in [0usize, 1, 63, 64, 65, 255, 256, 257, 1000, 1024, 1025, 4096, 4097, 5000] {
                let src: Vec<u8> = (0..n).map(|i| ((i + round) % 251) as u8).collect();
                let b = copied(&src);
                assert_eq!(&b[..], &src[..], "{n}");
                let c = b.clone();
                drop(b);
                assert_eq!(&c[..], &src[..]);
                kept.push((src, c)); // copies stay intact while later ones fill new chunks
            }
        }
        for (src, c) in &kept {
            assert_eq!(&c[..], &src[..]);
        }
    }

    #[test]
    fn batches_refuse_null_arrays_and_empty_counts_and_still_release() {
        static RELEASED: AtomicUsize = AtomicUsize::new(0);
        let rel = || rel(&RELEASED);
        unsafe {
            assert!(bytes_batch(std::ptr::null(), std::ptr::null(), 0, rel()).is_err());
            assert!(bytes_batch(std::ptr::null(), [1u32].as_ptr(), 1, rel()).is_err());
            let p = [std::ptr::null::<u8>()];
            assert!(bytes_batch(p.as_ptr(), [3u32].as_ptr(), 1, rel()).is_err());
            assert!(bytes_batch(p.as_ptr(), [0u32].as_ptr(), 1, rel()).unwrap().to_vec()[0].is_empty());
            assert!(bytes_packed(std::ptr::null(), 0, std::ptr::null(), 0, rel()).is_err());
            assert!(bytes_packed(std::ptr::null(), 5, [5u32].as_ptr(), 1, rel()).is_err());
            assert!(bytes_single(std::ptr::null(), 1, rel()).is_err());
            assert!(bytes_single(std::ptr::null(), 0, rel()).unwrap().is_empty());
        }
        assert_eq!(RELEASED.load(Ordering::SeqCst), 8);
    }
}
