//! When a response reached the load generator's socket, as the kernel
//! stamped it on arrival.
//!
//! `bazaar bench http` runs its client on the node's own two cores. A
//! response that has arrived may then wait for the client's thread to get
//! a core, and for the client's other connections to be served before it:
//! time a remote client would not spend. The kernel stamps each packet
//! when it arrives (`SO_TIMESTAMPNS`), and `recvmsg` hands the stamp of the
//! last packet read back with the bytes, so the benchmark can report both
//! when a response arrived and when the client got to read it. The kernel
//! turns stamping on a moment after the first socket asks for it (from a
//! work queue); what arrives before carries no stamp.

// `recvmsg` with a control buffer and `setsockopt` have no safe wrapper in
// the crates the project uses; the unsafe code is the two calls and the
// walk over the control messages the kernel wrote.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Asks the kernel to stamp what arrives on `socket` with the wall-clock
/// time it arrived. Elsewhere than on Linux nothing is stamped, and
/// [`receive`] reports no arrival time.
#[cfg(target_os = "linux")]
pub(crate) fn enable(socket: &impl AsRawFd) -> io::Result<()> {
    let on: libc::c_int = 1;
    // SAFETY: `on` outlives the call and its size is the length passed.
    let result = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_TIMESTAMPNS,
            (&raw const on).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if result == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn enable(_socket: &impl AsRawFd) -> io::Result<()> {
    Ok(())
}

/// Reads what has arrived on `socket` into `buffer` without blocking: the
/// byte count, and when the last packet read arrived if the kernel said.
pub(crate) fn receive(socket: RawFd, buffer: &mut [u8]) -> io::Result<(usize, Option<SystemTime>)> {
    let mut vector = libc::iovec { iov_base: buffer.as_mut_ptr().cast(), iov_len: buffer.len() };
    // Room for one `timespec` control message, aligned as `cmsghdr` wants.
    let mut control = [0u64; 8];
    // SAFETY: an all-zero `msghdr` is a valid empty header.
    let mut header: libc::msghdr = unsafe { std::mem::zeroed() };
    header.msg_iov = &raw mut vector;
    header.msg_iovlen = 1;
    header.msg_control = control.as_mut_ptr().cast();
    header.msg_controllen = size_of_val(&control) as _;
    // SAFETY: the header points at `vector` (which points at `buffer`) and
    // at `control`, all alive and as long as the lengths say.
    let read = unsafe { libc::recvmsg(socket, &raw mut header, libc::MSG_DONTWAIT) };
    let Ok(read) = usize::try_from(read) else { return Err(io::Error::last_os_error()) };
    let mut arrived = None;
    // SAFETY: the kernel wrote well-formed control messages into `control`
    // and set `msg_controllen` to their length; the CMSG_* functions stay
    // inside it, and a `timespec` is read unaligned from its message.
    unsafe {
        let mut message = libc::CMSG_FIRSTHDR(&raw const header);
        while !message.is_null() {
            #[cfg(target_os = "linux")]
            if (*message).cmsg_level == libc::SOL_SOCKET
                && (*message).cmsg_type == libc::SCM_TIMESTAMPNS
            {
                let stamp: libc::timespec =
                    std::ptr::read_unaligned(libc::CMSG_DATA(message).cast());
                arrived = Some(
                    UNIX_EPOCH
                        + Duration::new(
                            u64::try_from(stamp.tv_sec).unwrap_or(0),
                            u32::try_from(stamp.tv_nsec).unwrap_or(0),
                        ),
                );
            }
            message = libc::CMSG_NXTHDR(&raw const header, message);
        }
    }
    Ok((read, arrived))
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;
    use std::net::{TcpListener, TcpStream};
    use std::os::fd::AsRawFd as _;
    use std::time::SystemTime;

    /// Probes of whether the kernel stamps yet, 10 ms apart.
    #[cfg(target_os = "linux")]
    const STAMPING_PROBES_MAX: usize = 500;

    /// Reads what has arrived on `receiver`, waiting for something to.
    #[cfg(target_os = "linux")]
    fn receive_some(receiver: &TcpStream, buffer: &mut [u8]) -> (usize, Option<SystemTime>) {
        loop {
            match super::receive(receiver.as_raw_fd(), buffer) {
                Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
                received => return received.unwrap(),
            }
        }
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn bytes_read_from_a_stamped_socket_carry_the_time_they_arrived() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut sender = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (receiver, _) = listener.accept().unwrap();
        super::enable(&receiver).unwrap();
        // When no socket of the machine stamped before, the kernel turns
        // stamping on a moment later, from a work queue: until then what
        // arrives carries no stamp. Probe until a byte comes back stamped.
        let stamping = (0..STAMPING_PROBES_MAX).any(|_| {
            sender.write_all(b".").unwrap();
            let (_, arrived) = receive_some(&receiver, &mut [0u8; 1]);
            arrived.is_some() || {
                std::thread::sleep(std::time::Duration::from_millis(10));
                false
            }
        });
        assert!(stamping, "no byte came back stamped in {STAMPING_PROBES_MAX} probes");
        let before = SystemTime::now();
        sender.write_all(b"HTTP/1.1 201 Created\r\n").unwrap();
        std::thread::sleep(std::time::Duration::from_millis(50));
        let after = SystemTime::now();
        let mut buffer = [0u8; 64];
        let (read, arrived) = receive_some(&receiver, &mut buffer);
        assert_eq!(&buffer[..read], b"HTTP/1.1 201 Created\r\n");
        let arrived = arrived.expect("the kernel stamps what arrives");
        assert!(before <= arrived && arrived < after, "arrived {arrived:?}, sent at {before:?}");
        // Read 50 ms after sending, stamped at arrival: the stamp is not the
        // time of the read.
        assert!(after.duration_since(arrived).unwrap() >= std::time::Duration::from_millis(50));
    }

    #[test]
    fn an_empty_socket_reads_as_would_block_without_waiting() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let _sender = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (receiver, _) = listener.accept().unwrap();
        super::enable(&receiver).unwrap();
        let error = super::receive(receiver.as_raw_fd(), &mut [0u8; 8]).unwrap_err();
        assert_eq!(error.kind(), std::io::ErrorKind::WouldBlock);
    }
}
