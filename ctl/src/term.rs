//! The local terminal for `-t`: raw mode restored on every exit path, and its size.

use std::os::fd::{AsFd, BorrowedFd};

use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg, Termios};

/// Puts stdin in raw mode; the previous mode comes back when this is dropped (also on panic
/// unwinding and on error returns).
pub struct RawMode {
    saved: Termios,
}

impl RawMode {
    pub fn enter() -> anyhow::Result<Option<RawMode>> {
        let stdin = std::io::stdin();
        if !nix::unistd::isatty(stdin.as_fd()).unwrap_or(false) {
            return Ok(None);
        }
        let saved = tcgetattr(stdin.as_fd())?;
        let mut raw = saved.clone();
        cfmakeraw(&mut raw);
        tcsetattr(stdin.as_fd(), SetArg::TCSANOW, &raw)?;
        Ok(Some(RawMode { saved }))
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = tcsetattr(std::io::stdin().as_fd(), SetArg::TCSANOW, &self.saved);
    }
}

/// (rows, cols) of the terminal on stdout (or stdin).
pub fn size() -> Option<(u16, u16)> {
    for fd in [1, 0] {
        // SAFETY: fd 0/1 stay open for the process's life.
        let fd = unsafe { BorrowedFd::borrow_raw(fd) };
        let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
        // SAFETY: TIOCGWINSZ writes a winsize into `ws`.
        if unsafe {
            libc::ioctl(
                std::os::fd::AsRawFd::as_raw_fd(&fd),
                libc::TIOCGWINSZ,
                &mut ws,
            )
        } == 0
            && ws.ws_row > 0
        {
            return Some((ws.ws_row, ws.ws_col));
        }
    }
    None
}
