//! One connection's socket, metered and resettable.
//!
//! A stream's ack timeout has to tell a slow link from a dead one. Acknowledgements are one sign
//! of life; the other is the socket taking our bytes: the kernel accepts writes only as the peer
//! acknowledges earlier ones (once its send buffer is full), so a link that carries 100 KB/s
//! keeps taking bytes while a black-holed one stops. [`Meter`] records when the socket last took
//! another [`PROGRESS_BYTES`]; small writes (HTTP/2 pings, window updates) do not count, so a
//! dead link's keepalive pings do not look like progress. Bytes count only up to a credit the
//! stream grants ([`Meter::credit`]: what was waiting for acks when it last heard from the
//! server), so a server that reads everything and acknowledges nothing is not kept alive by new
//! records sent to it.
//!
//! A connection that a stream gives up on is reset ([`Meter::reset`]): the socket is closed with
//! RST (SO_LINGER 0), so bytes still queued in the kernel are discarded rather than delivered
//! late (where they would be written a second time after the replay), and nothing waits on a
//! dead peer to close.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures::task::AtomicWaker;
use hyper_util::client::legacy::connect::{Connected, Connection};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// Bytes the socket must take for it to count as progress.
pub const PROGRESS_BYTES: u64 = 16 * 1024;

/// What one connection's socket did, shared between the socket and the stream that uses it.
pub struct Meter {
    start: Instant,
    written: AtomicU64,
    /// `written` when progress was last recorded.
    mark: AtomicU64,
    /// When progress was last recorded, in nanoseconds since `start` (0: never).
    progress_at: AtomicU64,
    /// `credit.upto`, read without the lock by every write: below it nothing is to be done.
    credit_hint: AtomicU64,
    credit: Mutex<Credit>,
    /// A TCP connection was made (TLS and the HTTP/2 handshake may still be under way).
    connected: AtomicBool,
    reset: AtomicBool,
    waker: AtomicWaker,
}

impl Meter {
    pub fn new() -> Arc<Meter> {
        Arc::new(Meter {
            start: Instant::now(),
            written: AtomicU64::new(0),
            mark: AtomicU64::new(0),
            progress_at: AtomicU64::new(0),
            credit_hint: AtomicU64::new(u64::MAX),
            credit: Mutex::new(Credit { upto: u64::MAX, spent_at: 0 }),
            connected: AtomicBool::new(false),
            reset: AtomicBool::new(false),
            waker: AtomicWaker::new(),
        })
    }

    fn now(&self) -> u64 {
        (self.start.elapsed().as_nanos() as u64).max(1)
    }

    fn at(&self, nanos: u64) -> Option<Instant> {
        (nanos != 0).then(|| self.start + Duration::from_nanos(nanos))
    }

    fn credit_lock(&self) -> std::sync::MutexGuard<'_, Credit> {
        self.credit.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn wrote(&self, n: usize) {
        let total = self.written.fetch_add(n as u64, Ordering::Relaxed) + n as u64;
        let progress = total - self.mark.load(Ordering::Relaxed) >= PROGRESS_BYTES;
        let at_credit = total >= self.credit_hint.load(Ordering::Relaxed);
        if !(progress || at_credit) {
            return;
        }
        let now = self.now();
        if at_credit {
            // Under the lock: a credit granted meanwhile is not taken as spent.
            let mut c = self.credit_lock();
            if total >= c.upto && c.spent_at == 0 {
                c.spent_at = now;
            }
        }
        if progress {
            self.mark.store(total, Ordering::Relaxed);
            self.progress_at.store(now, Ordering::Relaxed);
        }
    }

    /// From now on, the next `bytes` the socket takes count as progress, and no more.
    pub fn credit(&self, bytes: u64) {
        let mut c = self.credit_lock();
        // Progress past a spent credit stays uncounted.
        if c.spent_at != 0 {
            self.progress_at.fetch_min(c.spent_at, Ordering::Relaxed);
        }
        c.spent_at = 0;
        c.upto = self.written().saturating_add(bytes);
        self.credit_hint.store(c.upto, Ordering::Relaxed);
    }

    /// Whether a TCP connection was made.
    pub fn connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed)
    }

    /// Bytes the socket took so far.
    pub fn written(&self) -> u64 {
        self.written.load(Ordering::Relaxed)
    }

    /// When the socket last took another [`PROGRESS_BYTES`] within its credit (None: not yet):
    /// once the credit is spent, the time it was.
    pub fn last_progress(&self) -> Option<Instant> {
        let spent = self.credit_lock().spent_at;
        let p = self.at(self.progress_at.load(Ordering::Relaxed));
        match self.at(spent) {
            Some(spent) => p.map(|p| p.min(spent)),
            None => p,
        }
    }

    /// Closes the connection with RST: its next read or write fails, and the socket is dropped
    /// with SO_LINGER 0.
    pub fn reset(&self) {
        self.reset.store(true, Ordering::Release);
        self.waker.wake();
    }

    fn is_reset(&self) -> bool {
        self.reset.load(Ordering::Acquire)
    }
}

/// The bytes credited as progress, and when they were spent.
struct Credit {
    /// The byte count up to which writes count as progress (u64::MAX: no limit).
    upto: u64,
    /// When `written` reached `upto`, in nanoseconds since `start` (0: not yet).
    spent_at: u64,
}

/// Resets a connection when dropped, unless disarmed: a physical stream that is given up on
/// takes its connection with it.
pub struct ResetOnDrop(pub Option<Arc<Meter>>);

impl Drop for ResetOnDrop {
    fn drop(&mut self) {
        if let Some(m) = self.0.take() {
            m.reset();
        }
    }
}

/// A TCP socket that reports to a [`Meter`].
pub struct Metered {
    io: TcpStream,
    meter: Option<Arc<Meter>>,
}

impl Metered {
    pub fn new(io: TcpStream, meter: Option<Arc<Meter>>) -> Metered {
        if let Some(m) = &meter {
            m.connected.store(true, Ordering::Relaxed);
        }
        Metered { io, meter }
    }

    /// The error a reset connection gives, after arranging for the socket to send RST on close.
    fn reset_error(&self) -> io::Error {
        let _ = self.io.set_zero_linger();
        io::Error::new(io::ErrorKind::ConnectionAborted, "the stream gave up on this connection")
    }

    fn check(&self, cx: &Context<'_>) -> Option<io::Error> {
        let m = self.meter.as_ref()?;
        m.waker.register(cx.waker());
        m.is_reset().then(|| self.reset_error())
    }
}

impl AsyncRead for Metered {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let me = self.get_mut();
        if let Some(e) = me.check(cx) {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut me.io).poll_read(cx, buf)
    }
}

impl Metered {
    /// A write through `write`, refused once the connection is reset, and metered.
    fn metered(
        &mut self,
        cx: &mut Context<'_>,
        write: impl FnOnce(Pin<&mut TcpStream>, &mut Context<'_>) -> Poll<io::Result<usize>>,
    ) -> Poll<io::Result<usize>> {
        if let Some(e) = self.check(cx) {
            return Poll::Ready(Err(e));
        }
        let r = write(Pin::new(&mut self.io), cx);
        if let (Poll::Ready(Ok(n)), Some(m)) = (&r, &self.meter) {
            m.wrote(*n);
        }
        r
    }
}

impl AsyncWrite for Metered {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.get_mut().metered(cx, |io, cx| io.poll_write(cx, buf))
    }

    fn poll_write_vectored(self: Pin<&mut Self>, cx: &mut Context<'_>, bufs: &[io::IoSlice<'_>]) -> Poll<io::Result<usize>> {
        self.get_mut().metered(cx, |io, cx| io.poll_write_vectored(cx, bufs))
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

impl Connection for Metered {
    fn connected(&self) -> Connected {
        self.io.connected()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn only_a_good_share_of_bytes_counts_as_progress() {
        let m = Meter::new();
        assert!(m.last_progress().is_none());
        for _ in 0..100 {
            m.wrote(17); // pings
        }
        assert!(m.last_progress().is_none(), "1,700 bytes of pings are not progress");
        m.wrote(PROGRESS_BYTES as usize);
        let first = m.last_progress().expect("progress");
        m.wrote(100);
        assert_eq!(m.last_progress(), Some(first), "the next mark is another PROGRESS_BYTES on");
        assert_eq!(m.written(), 1_700 + PROGRESS_BYTES + 100);
    }

    #[test]
    fn bytes_beyond_the_credit_are_not_progress() {
        let m = Meter::new();
        m.credit(2 * PROGRESS_BYTES);
        m.wrote(PROGRESS_BYTES as usize);
        let first = m.last_progress().expect("within the credit");
        std::thread::sleep(Duration::from_millis(5));
        m.wrote(PROGRESS_BYTES as usize); // spends the credit
        let spent = m.last_progress().expect("progress");
        assert!(spent > first);
        std::thread::sleep(Duration::from_millis(5));
        m.wrote(4 * PROGRESS_BYTES as usize);
        assert_eq!(m.last_progress(), Some(spent), "bytes past the credit do not move it");
        std::thread::sleep(Duration::from_millis(5));
        m.credit(2 * PROGRESS_BYTES);
        assert_eq!(m.last_progress(), Some(spent), "what was past the old credit stays uncounted");
        m.wrote(PROGRESS_BYTES as usize);
        assert!(m.last_progress().unwrap() > spent, "a new credit counts again");
    }

    #[tokio::test]
    async fn a_reset_connection_fails_and_its_peer_sees_rst() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let client = TcpStream::connect(addr).await.unwrap();
        let (mut server, _) = listener.accept().await.unwrap();
        let meter = Meter::new();
        let mut io = Metered::new(client, Some(meter.clone()));
        io.write_all(&[1u8; 20_000]).await.unwrap();
        assert!(meter.last_progress().is_some());
        let mut got = vec![0u8; 20_000];
        server.read_exact(&mut got).await.unwrap();
        // A pending read is woken by the reset and fails; dropping the socket sends RST.
        let reader = tokio::spawn(async move {
            let mut b = [0u8; 1];
            let r = io.read(&mut b).await;
            drop(io);
            r
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        ResetOnDrop(Some(meter)).0.take().unwrap().reset();
        let r = reader.await.unwrap();
        assert_eq!(r.unwrap_err().kind(), io::ErrorKind::ConnectionAborted);
        let mut b = [0u8; 1];
        let e = server.read(&mut b).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::ConnectionReset, "RST, not FIN");
    }
}
