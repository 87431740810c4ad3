//! File descriptors in a freshly forked child: close everything the container must not see,
//! keep what it was given.

use std::os::fd::RawFd;

use nix::fcntl::{fcntl, FcntlArg, FdFlag};

use super::ProcessError;

/// Closes every open fd except `keep` and `0..keep_below`. Runs in a forked child.
pub(crate) fn close_all_except(keep_below: RawFd, keep: &[RawFd]) -> Result<(), ProcessError> {
    let mut open = Vec::new();
    let dir = std::fs::read_dir("/proc/self/fd").map_err(|e| ProcessError::Io {
        context: "listing /proc/self/fd".into(),
        source: e,
    })?;
    for entry in dir.flatten() {
        if let Some(fd) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<RawFd>().ok())
        {
            open.push(fd);
        }
    }
    // The directory stream's own fd is closed by now; closing it again is harmless (EBADF).
    for fd in open {
        if fd < keep_below || keep.contains(&fd) {
            continue;
        }
        // SAFETY: closing an fd number in a single-threaded child; nothing else owns it.
        unsafe { libc::close(fd) };
    }
    Ok(())
}

/// Right before exec: fds `3..3+preserve` stay open across exec, every other fd above 2 is
/// marked close-on-exec (so nothing of the runtime reaches the container's program).
pub(crate) fn prepare_for_exec(preserve: u32) -> Result<(), ProcessError> {
    let first_closed = 3 + preserve;
    // SAFETY: close_range only changes fd flags.
    let r = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first_closed,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    if r != 0 {
        return Err(ProcessError::sys("close_range", nix::errno::Errno::last()));
    }
    for fd in 3..first_closed as RawFd {
        // A preserved fd the caller did not actually have open is simply not there.
        if let Ok(flags) = fcntl(unsafe_borrow(fd), FcntlArg::F_GETFD) {
            let flags = FdFlag::from_bits_retain(flags) - FdFlag::FD_CLOEXEC;
            fcntl(unsafe_borrow(fd), FcntlArg::F_SETFD(flags))
                .map_err(|e| ProcessError::sys(format!("keeping fd {fd} open"), e))?;
        }
    }
    Ok(())
}

/// Moves `fds` onto 0, 1, 2 (`None` keeps the inherited one), safe against overlaps.
pub(crate) fn install_stdio(fds: [Option<RawFd>; 3], above: RawFd) -> Result<(), ProcessError> {
    let mut moved = [None; 3];
    for (i, fd) in fds.iter().enumerate() {
        if let Some(fd) = fd {
            let high = fcntl(unsafe_borrow(*fd), FcntlArg::F_DUPFD_CLOEXEC(above))
                .map_err(|e| ProcessError::sys("duplicating a stdio fd", e))?;
            moved[i] = Some(high);
        }
    }
    for (i, fd) in moved.iter().enumerate() {
        if let Some(fd) = fd {
            // SAFETY: dup2 onto a standard fd number in a single-threaded child.
            if unsafe { libc::dup2(*fd, i as RawFd) } < 0 {
                return Err(ProcessError::sys(
                    "dup2 onto stdio",
                    nix::errno::Errno::last(),
                ));
            }
            // SAFETY: the temporary copy is ours.
            unsafe { libc::close(*fd) };
        }
    }
    Ok(())
}

/// Moves `fd` to the lowest free number at or above `min` (close-on-exec), so it is neither
/// one of the fds passed to the container nor replaced by its stdio. Runs in a forked child.
pub(crate) fn move_above(fd: RawFd, min: RawFd) -> Result<RawFd, ProcessError> {
    if fd >= min {
        return Ok(fd);
    }
    // SAFETY: fcntl/close on fd numbers this single-threaded child controls.
    let moved = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, min) };
    if moved < 0 {
        return Err(ProcessError::sys(
            format!("moving fd {fd} to {min} or above"),
            nix::errno::Errno::last(),
        ));
    }
    // SAFETY: as above; the old number is ours and no longer used.
    unsafe { libc::close(fd) };
    Ok(moved)
}

fn unsafe_borrow(fd: RawFd) -> std::os::fd::BorrowedFd<'static> {
    // SAFETY: used only for fcntl on fd numbers this child controls; an invalid fd yields EBADF.
    unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) }
}
