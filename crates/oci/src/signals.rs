//! Signal names on the command line, and forwarding of our own signals to a container.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::str::FromStr;
use std::sync::atomic::{AtomicI32, Ordering};

use anyhow::{anyhow, Context};
use nix::sys::signal::{self, SaFlags, SigAction, SigHandler, SigSet, Signal};

/// Parses `KILL`, `SIGKILL`, `kill` or `9`.
pub fn parse(text: &str) -> anyhow::Result<Signal> {
    if let Ok(number) = text.parse::<i32>() {
        return Signal::try_from(number).map_err(|_| anyhow!("unknown signal {number}"));
    }
    let upper = text.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    Signal::from_str(&name).map_err(|_| anyhow!("unknown signal {text:?}"))
}

/// The signals `run` and `exec` pass on to the container's process instead of dying of them.
const FORWARDED: [Signal; 8] = [
    Signal::SIGHUP,
    Signal::SIGINT,
    Signal::SIGQUIT,
    Signal::SIGTERM,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGWINCH,
    Signal::SIGCONT,
];

/// Write end of the self-pipe the handler writes signal numbers to (-1 when not installed).
static PIPE_WRITE: AtomicI32 = AtomicI32::new(-1);

extern "C" fn on_signal(signo: libc::c_int) {
    let fd = PIPE_WRITE.load(Ordering::Relaxed);
    if fd >= 0 {
        let byte = signo as u8;
        // SAFETY: write(2) is async-signal-safe; the buffer is a live local byte.
        unsafe {
            libc::write(fd, (&byte as *const u8).cast(), 1);
        }
    }
}

/// Forwards the signals in [`FORWARDED`] that this process receives to `pid`, from a background
/// thread, for the rest of the process's life. Handlers are reset by exec, so children started
/// afterwards are unaffected.
pub fn forward_to(pid: i32) -> anyhow::Result<()> {
    let (read_end, write_end) = nix::unistd::pipe().context("creating the signal pipe")?;
    // The write end lives as long as the process: the handler may fire at any time.
    PIPE_WRITE.store(
        std::os::fd::IntoRawFd::into_raw_fd(write_end),
        Ordering::Relaxed,
    );
    let action = SigAction::new(
        SigHandler::Handler(on_signal),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    for sig in FORWARDED {
        // SAFETY: the handler only performs an async-signal-safe write(2).
        unsafe { signal::sigaction(sig, &action) }
            .with_context(|| format!("installing a handler for {sig}"))?;
    }
    let target = nix::unistd::Pid::from_raw(pid);
    std::thread::spawn(move || relay(read_end, target));
    Ok(())
}

fn relay(read_end: OwnedFd, target: nix::unistd::Pid) {
    let raw = read_end.as_raw_fd();
    // SAFETY: we own `read_end` and hand it over to the File, which closes it once.
    let mut file = unsafe { std::fs::File::from_raw_fd(raw) };
    std::mem::forget(read_end);
    let mut byte = [0u8; 1];
    while let Ok(1) = std::io::Read::read(&mut file, &mut byte) {
        if let Ok(sig) = Signal::try_from(i32::from(byte[0])) {
            // The process may already be gone; nothing to do then.
            let _ = signal::kill(target, sig);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_and_numbers() {
        assert_eq!(parse("KILL").unwrap(), Signal::SIGKILL);
        assert_eq!(parse("SIGTERM").unwrap(), Signal::SIGTERM);
        assert_eq!(parse("hup").unwrap(), Signal::SIGHUP);
        assert_eq!(parse("9").unwrap(), Signal::SIGKILL);
        assert!(parse("NOPE").is_err());
        assert!(parse("999").is_err());
    }
}
