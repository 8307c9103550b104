//! A stream that notes when a byte last crossed it, either way: what the server's idle bound on
//! a connection and the sync client's stall bound on the link to the hub both read. It only
//! watches: it never delays, drops or changes a byte.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// When a byte last crossed (ms since `born`).
#[derive(Debug)]
pub struct LastSeen {
    born: Instant,
    last_ms: AtomicU64,
}

impl Default for LastSeen {
    fn default() -> Self {
        LastSeen {
            born: Instant::now(),
            last_ms: AtomicU64::new(0),
        }
    }
}

impl LastSeen {
    pub fn touch(&self) {
        self.last_ms
            .store(self.born.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    /// How long nothing has crossed.
    pub fn silent_for(&self) -> Duration {
        let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
        self.born.elapsed().saturating_sub(last)
    }
}

/// What a [`Watched`] stream tells of each byte that crosses it.
pub trait Touch: Send + Sync {
    fn touch(&self);
}

impl Touch for LastSeen {
    fn touch(&self) {
        LastSeen::touch(self)
    }
}

/// `inner`, telling `activity` of each byte read or written.
pub struct Watched<T, A> {
    inner: T,
    activity: Arc<A>,
}

impl<T, A> Watched<T, A> {
    pub fn new(inner: T, activity: Arc<A>) -> Self {
        Watched { inner, activity }
    }
}

impl<T: AsyncRead + Unpin, A: Touch> AsyncRead for Watched<T, A> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.touch();
        }
        r
    }
}

impl<T: AsyncWrite + Unpin, A: Touch> AsyncWrite for Watched<T, A> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
