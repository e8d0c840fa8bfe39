//! The TCP listener of the server, bounded: at most `connections_max`
//! connections are open at once (more wait in the kernel's listen backlog),
//! a connection that sends nothing for [`IDLE_TIMEOUT_MS`] is closed, and
//! Nagle's algorithm is off so small JSON responses leave at once.

use std::future::Future as _;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};

/// A connection that sends nothing for this long is closed: a keep-alive
/// client reconnects cheaply, while a silent connection holds one of the
/// `connections_max` slots that active clients need.
pub const IDLE_TIMEOUT_MS: u64 = 60_000;

/// Pause after a failed `accept` that is not about one connection (such as
/// running out of file descriptors), so the loop does not spin.
const ACCEPT_ERROR_PAUSE_MS: u64 = 100;

/// A listener that holds a permit per open connection.
pub struct Bounded {
    /// The socket.
    listener: TcpListener,
    /// One permit per connection that may be open.
    permits: Arc<Semaphore>,
}

impl Bounded {
    /// Bounds `listener` to `connections_max` open connections.
    pub fn new(listener: TcpListener, connections_max: usize) -> Self {
        Self { listener, permits: Arc::new(Semaphore::new(connections_max.max(1))) }
    }
}

impl axum::serve::Listener for Bounded {
    type Io = Connection;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        // The semaphore is never closed, so acquiring only ever waits.
        let permit = self.permits.clone().acquire_owned().await.ok();
        loop {
            match self.listener.accept().await {
                Ok((stream, address)) => {
                    // Small responses should not wait for more data to batch.
                    let _ = stream.set_nodelay(true);
                    let idle = Box::pin(tokio::time::sleep(Duration::from_millis(IDLE_TIMEOUT_MS)));
                    return (Connection { stream, idle, _permit: permit }, address);
                }
                Err(error) => {
                    let per_connection = matches!(
                        error.kind(),
                        io::ErrorKind::ConnectionRefused
                            | io::ErrorKind::ConnectionAborted
                            | io::ErrorKind::ConnectionReset
                    );
                    if !per_connection {
                        tracing::warn!(%error, "accepting a connection failed");
                        tokio::time::sleep(Duration::from_millis(ACCEPT_ERROR_PAUSE_MS)).await;
                    }
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.listener.local_addr()
    }
}

/// An accepted connection: the stream, its idle timer, and its permit.
pub struct Connection {
    /// The socket.
    stream: TcpStream,
    /// Fires when nothing was received for [`IDLE_TIMEOUT_MS`].
    idle: Pin<Box<Sleep>>,
    /// Released when the connection closes.
    _permit: Option<OwnedSemaphorePermit>,
}

impl AsyncRead for Connection {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.stream).poll_read(cx, buf) {
            Poll::Ready(result) => {
                if buf.filled().len() > before {
                    this.idle
                        .as_mut()
                        .reset(Instant::now() + Duration::from_millis(IDLE_TIMEOUT_MS));
                }
                Poll::Ready(result)
            }
            Poll::Pending => match this.idle.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("the connection sent nothing for {IDLE_TIMEOUT_MS} ms"),
                ))),
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

impl AsyncWrite for Connection {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}
