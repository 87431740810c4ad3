//! The container's terminal: a new pty whose master goes to the console socket (SCM_RIGHTS,
//! like runc) and whose slave becomes the process's controlling terminal and stdio.

use std::io::IoSliceMut;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::errno::Errno;
use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags, UnixAddr};

use super::ProcessError;

/// "/dev/pts/" plus up to 10 digits and a NUL.
const PTS_PREFIX: &[u8] = b"/dev/pts/";
const PTS_NAME_MAX: usize = 9 + 10 + 1;

/// In the container (after pivot_root): opens a new pty from /dev/ptmx, sends the master to the
/// console socket `socket_fd` (one message: the slave's path as payload, the master fd as
/// SCM_RIGHTS), makes the slave the controlling terminal and stdin/stdout/stderr.
///
/// Runs between fork and exec: raw syscalls and stack buffers only. `socket_fd` stays open.
pub(crate) fn setup_console(socket_fd: RawFd) -> Result<(), ProcessError> {
    // SAFETY: a NUL-terminated literal path; the returned fd is owned right away.
    let master = unsafe {
        libc::open(
            c"/dev/ptmx".as_ptr(),
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        )
    };
    let master = owned(master, "opening /dev/ptmx")?;

    // unlockpt(); grantpt() is a no-op on devpts, which sets the slave's owner and mode itself.
    let unlock: libc::c_int = 0;
    // SAFETY: TIOCSPTLCK reads one int from a live stack variable.
    let rc = unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSPTLCK, &unlock) };
    check(rc, "unlocking the pty")?;

    let mut number: libc::c_uint = 0;
    // SAFETY: TIOCGPTN writes one unsigned int to a live stack variable.
    let rc = unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCGPTN, &mut number) };
    check(rc, "getting the pty number")?;
    let mut name = [0u8; PTS_NAME_MAX];
    let name_len = pts_name(number, &mut name);

    let slave = open_slave(&master, &name)?;
    send_master(socket_fd, &master, &name[..name_len])?;
    drop(master);

    // SAFETY: setsid takes no arguments.
    if unsafe { libc::setsid() } < 0 {
        let errno = Errno::last();
        // Already a session leader (the caller called setsid before) is fine.
        // SAFETY: getsid/getpid take plain integers.
        if errno != Errno::EPERM || unsafe { libc::getsid(0) != libc::getpid() } {
            return Err(ProcessError::sys("setsid", errno));
        }
    }
    // SAFETY: TIOCSCTTY takes an integer argument (0: do not steal).
    let rc = unsafe { libc::ioctl(slave.as_raw_fd(), libc::TIOCSCTTY, 0) };
    check(rc, "making the pty the controlling terminal")?;

    for target in 0..=2 {
        // SAFETY: dup2 onto the standard fds, which this process owns.
        let rc = unsafe { libc::dup2(slave.as_raw_fd(), target) };
        check(rc, "dup2 of the pty onto stdio")?;
    }
    if slave.as_raw_fd() <= 2 {
        // The slave landed on a standard fd itself (dup2 onto itself changed nothing): keep it
        // open across exec.
        let fd = std::os::fd::IntoRawFd::into_raw_fd(slave);
        // SAFETY: F_SETFD with plain flags on an fd we own.
        check(
            unsafe { libc::fcntl(fd, libc::F_SETFD, 0) },
            "clearing close-on-exec",
        )?;
    }
    Ok(())
}

/// Opens the slave side with TIOCGPTPEER (no path lookup, Linux 4.13+), falling back to its
/// path under /dev/pts.
fn open_slave(master: &OwnedFd, name: &[u8; PTS_NAME_MAX]) -> Result<OwnedFd, ProcessError> {
    let flags = libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC;
    // SAFETY: TIOCGPTPEER takes open flags and returns a new fd.
    let slave = unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCGPTPEER, flags) };
    if slave >= 0 {
        return owned(slave, "opening the pty slave");
    }
    // SAFETY: `name` is NUL-terminated by `pts_name` (the buffer is one byte larger than the
    // longest name).
    let slave = unsafe { libc::open(name.as_ptr().cast(), flags) };
    owned(slave, "opening the pty slave")
}

/// Sends `master` over the unix socket `socket_fd` with `payload` as the message body.
fn send_master(socket_fd: RawFd, master: &OwnedFd, payload: &[u8]) -> Result<(), ProcessError> {
    #[repr(C, align(8))]
    struct CmsgBuffer([u8; 64]);
    let mut control = CmsgBuffer([0; 64]);
    let fd_len = std::mem::size_of::<RawFd>() as libc::c_uint;
    // SAFETY: CMSG_* are pure arithmetic on the given length.
    let (space, len) = unsafe { (libc::CMSG_SPACE(fd_len), libc::CMSG_LEN(fd_len)) };

    let mut iov = libc::iovec {
        iov_base: payload.as_ptr() as *mut libc::c_void,
        iov_len: payload.len(),
    };
    // SAFETY: msghdr is plain data; all-zero is a valid empty header.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.0.as_mut_ptr().cast();
    msg.msg_controllen = space as _;
    // SAFETY: the control buffer is aligned, zeroed and larger than CMSG_SPACE(one fd), so the
    // first header and its data lie inside it; sendmsg only reads `msg` and the buffers it
    // points at, all alive for the call.
    let rc = unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = libc::SOL_SOCKET;
        (*cmsg).cmsg_type = libc::SCM_RIGHTS;
        (*cmsg).cmsg_len = len as _;
        std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<RawFd>(), master.as_raw_fd());
        libc::sendmsg(socket_fd, &msg, libc::MSG_NOSIGNAL)
    };
    if rc < 0 {
        return Err(ProcessError::sys(
            "sending the pty master to the console socket",
            Errno::last(),
        ));
    }
    Ok(())
}

/// The receiving end of a console socket: reads one message from `stream` carrying the pty
/// master fd (SCM_RIGHTS) and returns it (close-on-exec). Used by shims, `berth-oci` callers
/// and tests.
pub fn receive_pty_master(
    stream: &std::os::unix::net::UnixStream,
) -> Result<std::os::fd::OwnedFd, ProcessError> {
    let mut payload = [0u8; 4096];
    let mut iov = [IoSliceMut::new(&mut payload)];
    let mut control = nix::cmsg_space!([RawFd; 4]);
    let msg = recvmsg::<UnixAddr>(
        stream.as_raw_fd(),
        &mut iov,
        Some(&mut control),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .map_err(|errno| ProcessError::sys("receiving from the console socket", errno))?;

    let mut master = None;
    let cmsgs = msg
        .cmsgs()
        .map_err(|errno| ProcessError::sys("reading the console socket message", errno))?;
    for cmsg in cmsgs {
        if let ControlMessageOwned::ScmRights(fds) = cmsg {
            for fd in fds {
                // SAFETY: the kernel just installed `fd` in this process for us; nobody else
                // owns it.
                let fd = unsafe { OwnedFd::from_raw_fd(fd) };
                // Keep the first, close any extra ones.
                master.get_or_insert(fd);
            }
        }
    }
    let truncated = msg.flags.contains(MsgFlags::MSG_CTRUNC);
    match master {
        Some(master) if !truncated => Ok(master),
        Some(_) => Err(ProcessError::Invalid(
            "console socket message had more file descriptors than expected".into(),
        )),
        None if msg.bytes == 0 => Err(ProcessError::Invalid(
            "console socket closed before a pty master arrived".into(),
        )),
        None => Err(ProcessError::Invalid(
            "console socket message carried no file descriptor".into(),
        )),
    }
}

/// Sets the window size of the terminal `fd` (usually a pty master) to `rows` x `cols`.
pub fn set_winsize(fd: BorrowedFd<'_>, rows: u16, cols: u16) -> Result<(), ProcessError> {
    let size = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads one winsize from a live stack variable.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSWINSZ, &size) };
    check(rc, "setting the terminal window size")
}

/// Writes "/dev/pts/<number>" followed by a NUL into `buf`; returns its length without the NUL.
fn pts_name(number: u32, buf: &mut [u8; PTS_NAME_MAX]) -> usize {
    buf[..PTS_PREFIX.len()].copy_from_slice(PTS_PREFIX);
    let mut digits = [0u8; 10];
    let mut n = number;
    let mut count = 0;
    loop {
        digits[count] = b'0' + (n % 10) as u8;
        count += 1;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for i in 0..count {
        buf[PTS_PREFIX.len() + i] = digits[count - 1 - i];
    }
    let len = PTS_PREFIX.len() + count;
    buf[len] = 0;
    len
}

fn owned(fd: RawFd, context: &'static str) -> Result<OwnedFd, ProcessError> {
    if fd < 0 {
        return Err(ProcessError::sys(context, Errno::last()));
    }
    // SAFETY: `fd` was just returned by the kernel to us and is not owned elsewhere.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn check(rc: libc::c_int, context: &'static str) -> Result<(), ProcessError> {
    if rc < 0 {
        Err(ProcessError::sys(context, Errno::last()))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::os::fd::AsFd;
    use std::os::unix::net::UnixStream;

    use super::*;
    use crate::process::seccomp::test_fork::run_in_child;

    #[test]
    fn pts_names_are_formatted_on_the_stack() {
        let mut buf = [0xffu8; PTS_NAME_MAX];
        let len = pts_name(0, &mut buf);
        assert_eq!(&buf[..=len], b"/dev/pts/0\0");
        let len = pts_name(u32::MAX, &mut buf);
        assert_eq!(&buf[..=len], b"/dev/pts/4294967295\0");
    }

    #[test]
    fn console_master_reaches_the_socket_and_slave_is_stdio() {
        let (ours, theirs) = UnixStream::pair().unwrap();
        // The receiving side runs while the child waits for its acknowledgement.
        let receiver = std::thread::spawn(move || {
            let master = receive_pty_master(&ours).unwrap();
            set_winsize(master.as_fd(), 40, 120).unwrap();
            let mut master = std::fs::File::from(master);
            let mut got = [0u8; 5];
            master.read_exact(&mut got).unwrap();
            (&ours).write_all(b"k").unwrap();
            // Keep the master open until the child is done with the terminal.
            let mut done = [0u8; 1];
            let _ = (&ours).read(&mut done);
            got
        });
        run_in_child(move || {
            // A broken setup must fail the test, not hang it.
            // SAFETY: alarm takes a plain integer.
            unsafe { libc::alarm(10) };
            setup_console(theirs.as_raw_fd()).map_err(|e| e.to_string())?;
            let mut stdout = std::fs::File::from(unsafe_dup(1));
            stdout.write_all(b"hello").map_err(|e| e.to_string())?;
            let mut ack = [0u8; 1];
            (&theirs).read_exact(&mut ack).map_err(|e| e.to_string())?;
            // The pty is our controlling terminal and stdin is it too.
            // SAFETY: tcgetsid/getsid take plain integers.
            let (tty_sid, our_sid) = unsafe { (libc::tcgetsid(0), libc::getsid(0)) };
            if tty_sid != our_sid {
                return Err(format!("tty session {tty_sid}, ours {our_sid}"));
            }
            let mut size = libc::winsize {
                ws_row: 0,
                ws_col: 0,
                ws_xpixel: 0,
                ws_ypixel: 0,
            };
            // SAFETY: TIOCGWINSZ writes one winsize to a live variable.
            unsafe { libc::ioctl(0, libc::TIOCGWINSZ, &mut size) };
            if (size.ws_row, size.ws_col) != (40, 120) {
                return Err(format!("window {}x{}", size.ws_row, size.ws_col));
            }
            Ok(())
        });
        assert_eq!(&receiver.join().unwrap(), b"hello");
    }

    #[test]
    fn a_message_without_fd_is_a_clear_error() {
        let (ours, theirs) = UnixStream::pair().unwrap();
        (&theirs).write_all(b"/dev/pts/0").unwrap();
        let err = receive_pty_master(&ours).unwrap_err();
        assert!(err.to_string().contains("no file descriptor"), "{err}");
        drop(theirs);
        let err = receive_pty_master(&ours).unwrap_err();
        assert!(err.to_string().contains("closed"), "{err}");
    }

    fn unsafe_dup(fd: RawFd) -> OwnedFd {
        // SAFETY: dup returns a new fd that we own.
        owned(unsafe { libc::dup(fd) }, "dup").unwrap()
    }
}
