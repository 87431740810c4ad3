//! STUB: terminal (owned by the process-setup work stream).

use std::os::fd::RawFd;

use super::ProcessError;

/// In the container (after pivot_root): opens a new pty from /dev/ptmx, sends the master to the
/// console socket `socket_fd` (SCM_RIGHTS, like runc), makes the slave the controlling terminal
/// and stdin/stdout/stderr.
pub(crate) fn setup_console(_socket_fd: RawFd) -> Result<(), ProcessError> {
    Err(ProcessError::Invalid("terminal not implemented".into()))
}
