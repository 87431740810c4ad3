//! STUB: terminal (owned by the process-setup work stream).

use std::os::fd::RawFd;

use super::ProcessError;

/// In the container (after pivot_root): opens a new pty from /dev/ptmx, sends the master to the
/// console socket `socket_fd` (SCM_RIGHTS, like runc), makes the slave the controlling terminal
/// and stdin/stdout/stderr.
pub(crate) fn setup_console(_socket_fd: RawFd) -> Result<(), ProcessError> {
    Err(ProcessError::Invalid("terminal not implemented".into()))
}

/// The receiving end of a console socket: reads one message from `stream` carrying the pty
/// master fd (SCM_RIGHTS) and returns it. Used by shims, `berth-oci` callers and tests.
pub fn receive_pty_master(
    _stream: &std::os::unix::net::UnixStream,
) -> Result<std::os::fd::OwnedFd, ProcessError> {
    Err(ProcessError::Invalid("terminal not implemented".into()))
}
