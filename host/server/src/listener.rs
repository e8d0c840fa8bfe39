//! The TCP listener of the server, bounded: at most `connections_max`
//! connections are open at once, a connection that sends nothing for
//! [`IDLE_TIMEOUT_MS`] is closed, and Nagle's algorithm is off so small
//! JSON responses leave at once. Its listen backlog is
//! [`LISTEN_BACKLOG`], so a crowd connecting at once is queued by the
//! kernel, not dropped.
//!
//! A connection beyond `connections_max` is not left to wait: a flash
//! sale's crowd must get fast refusals, never connect timeouts (a
//! connection the kernel's backlog cannot take waits for the client's SYN
//! retries, one second, then three, then seven). It is accepted, answered
//! `503` with `Retry-After` and closed, by at most
//! [`REFUSALS_AT_ONCE_MAX`] refusals at once; only past those do new
//! connections wait in the backlog.

use std::future::Future as _;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _, ReadBuf};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};

use crate::error::{ApiError, OVERLOAD_RETRY_AFTER_S};

/// A connection that sends nothing for this long is closed: a keep-alive
/// client reconnects cheaply, while a silent connection holds one of the
/// `connections_max` slots that active clients need.
pub const IDLE_TIMEOUT_MS: u64 = 60_000;

/// Connections beyond `connections_max` being refused at once. Each holds
/// a socket and a small task for at most [`REFUSAL_LINGER_MS`].
pub const REFUSALS_AT_ONCE_MAX: usize = 1_024;

/// How long a refused connection is kept after its answer, reading and
/// discarding what the client sent: closing a socket with unread bytes
/// resets the connection, and the reset can destroy the answer before the
/// client has read it.
pub const REFUSAL_LINGER_MS: u64 = 1_000;

/// Most bytes read and discarded from a refused connection.
pub const REFUSAL_DRAIN_BYTES_MAX: usize = 64 * 1024;

/// Pause after a failed `accept` that is not about one connection (such as
/// running out of file descriptors), so the loop does not spin.
const ACCEPT_ERROR_PAUSE_MS: u64 = 100;

/// Connections the kernel completes and queues before the server accepts
/// them (the kernel caps it at `net.core.somaxconn`, 4,096 by default). The
/// usual 128 overflows when a crowd connects at once: a connection that
/// does not fit has its handshake dropped, and its client tries again one
/// second later, then three, then seven.
pub const LISTEN_BACKLOG: u32 = 4_096;

/// A listening socket on `address` with a backlog of [`LISTEN_BACKLOG`].
pub fn bind(address: SocketAddr) -> io::Result<TcpListener> {
    let socket = if address.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
    // A restarted node can listen again at once on the port its previous
    // run's connections still hold in TIME_WAIT.
    socket.set_reuseaddr(true)?;
    socket.bind(address)?;
    socket.listen(LISTEN_BACKLOG)
}

/// A listener that holds a permit per open connection.
pub struct Bounded {
    /// The socket.
    listener: TcpListener,
    /// One permit per connection that may be open.
    permits: Arc<Semaphore>,
    /// One permit per connection that may be being refused.
    refusals: Arc<Semaphore>,
    /// The whole answer to a connection beyond the cap.
    refusal: Arc<[u8]>,
    /// Connections refused, for the metrics.
    refused: Arc<AtomicU64>,
}

impl Bounded {
    /// Bounds `listener` to `connections_max` open connections, counting
    /// the connections refused beyond them in `refused`.
    pub fn new(listener: TcpListener, connections_max: usize, refused: Arc<AtomicU64>) -> Self {
        let connections_max = connections_max.max(1);
        Self {
            listener,
            permits: Arc::new(Semaphore::new(connections_max)),
            refusals: Arc::new(Semaphore::new(REFUSALS_AT_ONCE_MAX)),
            refusal: refusal_answer(connections_max).into(),
            refused,
        }
    }

    /// The next connection the kernel has accepted; errors that concern
    /// one connection are skipped, others pause the loop.
    async fn accept_next(&self) -> (TcpStream, SocketAddr) {
        loop {
            match self.listener.accept().await {
                Ok((stream, address)) => {
                    // Small responses should not wait for more data to batch.
                    let _ = stream.set_nodelay(true);
                    return (stream, address);
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

    /// Answers `stream` 503 and closes it, on a task of its own.
    fn refuse(&self, stream: TcpStream, refusal_permit: OwnedSemaphorePermit) {
        self.refused.fetch_add(1, Ordering::Relaxed);
        let answer = self.refusal.clone();
        tokio::spawn(async move {
            let _refusal_permit = refusal_permit;
            answer_and_close(stream, &answer).await;
        });
    }
}

/// The bytes of the 503 a connection beyond the cap gets: the API's error
/// body, `Retry-After`, and `Connection: close`.
fn refusal_answer(connections_max: usize) -> Vec<u8> {
    let error = ApiError::overloaded(format!(
        "the server is at its limit of {connections_max} open connections; retry shortly"
    ));
    let body = serde_json::to_vec(&error.body()).unwrap_or_default();
    let mut answer = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: {}\r\nconnection: close\r\ncontent-length: {}\r\n\r\n",
        error.retry_after_s.unwrap_or(OVERLOAD_RETRY_AFTER_S),
        body.len()
    )
    .into_bytes();
    answer.extend_from_slice(&body);
    answer
}

/// Reads the client's request head, sends `answer`, ends the sending side
/// and reads what else the client sent until it closes; at most
/// [`REFUSAL_DRAIN_BYTES_MAX`] read in all and [`REFUSAL_LINGER_MS`]
/// spent, then the socket closes. The answer waits for the request's
/// head because an HTTP client takes an answer that comes before its
/// request for a broken connection.
async fn answer_and_close(mut stream: TcpStream, answer: &[u8]) {
    const HEAD_END: &[u8] = b"\r\n\r\n";
    let linger = async {
        let mut discarded = [0u8; 4096];
        let mut drained = 0;
        // How much of `HEAD_END` the bytes read so far end with, so an end
        // split across reads is seen.
        let mut matched = 0;
        while matched < HEAD_END.len() && drained < REFUSAL_DRAIN_BYTES_MAX {
            let read = stream.read(&mut discarded).await?;
            if read == 0 {
                break;
            }
            drained += read;
            for &byte in &discarded[..read] {
                matched = match byte {
                    _ if byte == HEAD_END[matched] => matched + 1,
                    b'\r' => 1,
                    _ => 0,
                };
                if matched == HEAD_END.len() {
                    break;
                }
            }
        }
        stream.write_all(answer).await?;
        stream.shutdown().await?;
        while drained < REFUSAL_DRAIN_BYTES_MAX {
            let read = stream.read(&mut discarded).await?;
            if read == 0 {
                break;
            }
            drained += read;
        }
        io::Result::Ok(())
    };
    // A client that sends no head, does not read its answer or keeps
    // sending has only the linger time; then the connection closes
    // whatever its state.
    let _ = tokio::time::timeout(Duration::from_millis(REFUSAL_LINGER_MS), linger).await;
}

impl axum::serve::Listener for Bounded {
    type Io = Connection;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let permit = match self.permits.clone().try_acquire_owned() {
                Ok(permit) => Some(permit),
                // Every slot is taken and so is every refusal: new
                // connections wait in the backlog until a slot frees. The
                // semaphore is never closed, so acquiring only ever waits.
                Err(_) if self.refusals.available_permits() == 0 => {
                    self.permits.clone().acquire_owned().await.ok()
                }
                Err(_) => None,
            };
            let (stream, address) = self.accept_next().await;
            // A slot may have freed while the accept waited.
            let permit = permit.or_else(|| self.permits.clone().try_acquire_owned().ok());
            if let Some(permit) = permit {
                let idle = Box::pin(tokio::time::sleep(Duration::from_millis(IDLE_TIMEOUT_MS)));
                return (Connection { stream, idle, _permit: permit }, address);
            }
            match self.refusals.clone().try_acquire_owned() {
                Ok(refusal_permit) => self.refuse(stream, refusal_permit),
                // The refusals filled up while the accept waited: this one
                // is closed at once, the rest wait above.
                Err(_) => drop(stream),
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
    _permit: OwnedSemaphorePermit,
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
