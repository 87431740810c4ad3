//! STUB: seccomp (owned by the process-setup work stream).

use oci_spec::runtime::LinuxSeccomp;

#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    #[error("seccomp: {0}")]
    Other(String),
}

/// A seccomp filter compiled to BPF in the parent, loaded by the child right before exec.
#[derive(Debug, Clone)]
pub struct SeccompProgram {
    _private: (),
}

impl SeccompProgram {
    pub fn compile(_spec: &LinuxSeccomp) -> Result<Self, SeccompError> {
        Ok(SeccompProgram { _private: () })
    }

    /// Installs the filter on the calling thread. Async-signal-safe enough for a forked child:
    /// no allocation, only prctl/seccomp syscalls.
    pub fn load(&self) -> Result<(), SeccompError> {
        Ok(())
    }
}
