//! Test helper: runs a check in a forked child, so that process-wide changes (credentials,
//! capabilities, seccomp filters, rlimits, the controlling terminal) never leak into the test
//! harness. Lives here because the process module's own files belong to another stream; any
//! test under `crate::process` may use it.

use std::io::{Read, Write};

use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{fork, pipe, ForkResult};

/// Forks; the child runs `check` and exits 0 on `Ok`, 1 on `Err` (the message travels back
/// over a pipe), 2 on panic. The parent waits and panics with the child's message on failure.
pub(crate) fn run_in_child(check: impl FnOnce() -> Result<(), String>) {
    let (read_end, write_end) = pipe().expect("pipe");
    // SAFETY: the child only runs the test's check and then _exit()s; glibc makes malloc usable
    // after fork, which is all a test check needs.
    match unsafe { fork() }.expect("fork") {
        ForkResult::Child => {
            drop(read_end);
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(check));
            let (code, message) = match outcome {
                Ok(Ok(())) => (0, String::new()),
                Ok(Err(message)) => (1, message),
                Err(_) => (2, "check panicked".to_owned()),
            };
            let mut pipe = std::fs::File::from(write_end);
            let _ = pipe.write_all(message.as_bytes());
            // SAFETY: ends the forked child without running the parent's atexit handlers.
            unsafe { libc::_exit(code) }
        }
        ForkResult::Parent { child } => {
            drop(write_end);
            let mut message = String::new();
            let mut pipe = std::fs::File::from(read_end);
            let _ = pipe.read_to_string(&mut message);
            match waitpid(child, None).expect("waitpid") {
                WaitStatus::Exited(_, 0) => {}
                status => panic!("child failed ({status:?}): {message}"),
            }
        }
    }
}
