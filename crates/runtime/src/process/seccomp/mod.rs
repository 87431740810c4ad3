//! Seccomp: a spec's filter is compiled to classic BPF in the parent (with libseccomp, which
//! allocates and may take locks) and loaded in the child right before exec with one raw
//! `seccomp(2)` call.

mod cache;
mod compile;
mod default_profile;
#[cfg(test)]
pub(crate) mod test_fork;

use nix::errno::Errno;
use oci_spec::runtime::LinuxSeccomp;

pub use default_profile::docker_default_profile;

/// Why a seccomp filter could not be compiled or loaded.
#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    /// The spec asks for something Berth does not implement (e.g. SCMP_ACT_NOTIFY).
    #[error("seccomp: {0} is not supported")]
    Unsupported(String),
    /// The spec is malformed (bad argument index, out-of-range errno, ...).
    #[error("seccomp: invalid profile: {0}")]
    Invalid(String),
    /// libseccomp refused an operation.
    #[error("seccomp: {context}: {source}")]
    Library {
        context: String,
        #[source]
        source: libseccomp::error::SeccompError,
    },
    /// Exporting the compiled BPF failed.
    #[error("seccomp: exporting the filter: {0}")]
    Export(#[source] std::io::Error),
    /// The kernel refused the filter.
    #[error("seccomp: loading the filter: {0}")]
    Load(#[source] Errno),
    /// Anything else.
    #[error("seccomp: {0}")]
    Other(String),
}

/// Whether a filter built from `spec` lets every call of syscall `name` through: allowed by
/// default and by every rule naming it, or denied by default but allowed by a rule without
/// argument conditions and denied by none. Errs on "no" when unsure.
pub(crate) fn allows_unconditionally(spec: &LinuxSeccomp, name: &str) -> bool {
    use oci_spec::runtime::LinuxSeccompAction as A;
    let allows = |a: A| matches!(a, A::ScmpActAllow | A::ScmpActLog);
    let rules: Vec<_> = spec
        .syscalls()
        .iter()
        .flatten()
        .filter(|r| r.names().iter().any(|n| n == name))
        .collect();
    if !rules.iter().all(|r| allows(r.action())) {
        return false;
    }
    allows(spec.default_action())
        || rules
            .iter()
            .any(|r| r.args().as_ref().is_none_or(|args| args.is_empty()))
}

/// One classic BPF instruction, laid out like the kernel's `struct sock_filter`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct SockFilter {
    code: u16,
    jt: u8,
    jf: u8,
    k: u32,
}

/// The kernel's `struct sock_fprog`.
#[repr(C)]
struct SockFprog {
    len: libc::c_ushort,
    filter: *const SockFilter,
}

/// `SECCOMP_SET_MODE_FILTER` for seccomp(2).
const SECCOMP_SET_MODE_FILTER: libc::c_ulong = 1;
/// `SECCOMP_MODE_FILTER` for prctl(PR_SET_SECCOMP).
const SECCOMP_MODE_FILTER: libc::c_ulong = 2;

/// A seccomp filter compiled to BPF in the parent, loaded by the child right before exec.
#[derive(Debug, Clone)]
pub struct SeccompProgram {
    filter: Vec<SockFilter>,
    /// `SECCOMP_FILTER_FLAG_*` bits passed to seccomp(2).
    flags: libc::c_ulong,
}

impl SeccompProgram {
    /// Compiles `spec` (default action, architectures, flags, syscall rules) to BPF. Syscall
    /// names unknown to libseccomp or to every architecture of the filter are skipped.
    /// SCMP_ACT_NOTIFY and listener paths are rejected as unsupported.
    pub fn compile(spec: &LinuxSeccomp) -> Result<Self, SeccompError> {
        let (bpf, flags) = compile::compile(spec)?;
        let filter = parse_bpf(&bpf)?;
        Ok(SeccompProgram { filter, flags })
    }

    /// Number of BPF instructions (the kernel accepts at most 4096 per filter).
    pub fn len(&self) -> usize {
        self.filter.len()
    }

    /// Whether the program has no instructions (never true for a compiled program).
    pub fn is_empty(&self) -> bool {
        self.filter.is_empty()
    }

    /// Installs the filter on the calling thread. Async-signal-safe enough for a forked child:
    /// no allocation, only the seccomp (or, without flags on old kernels, prctl) syscall.
    /// Requires no_new_privs or CAP_SYS_ADMIN.
    pub fn load(&self) -> Result<(), SeccompError> {
        let len = libc::c_ushort::try_from(self.filter.len()).map_err(|_| Errno::E2BIG);
        let len = len.map_err(SeccompError::Load)?;
        let prog = SockFprog {
            len,
            filter: self.filter.as_ptr(),
        };
        // SAFETY: `prog` points at `self.filter`, which outlives the call; the kernel copies
        // the program before returning.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                SECCOMP_SET_MODE_FILTER,
                self.flags,
                &prog as *const SockFprog,
            )
        };
        if rc == 0 {
            return Ok(());
        }
        let errno = Errno::last();
        if errno != Errno::ENOSYS || self.flags != 0 {
            return Err(SeccompError::Load(errno));
        }
        // Kernels before 3.17 have no seccomp(2); prctl takes no flags.
        // SAFETY: as above, `prog` outlives the call.
        let rc = unsafe {
            libc::prctl(
                libc::PR_SET_SECCOMP,
                SECCOMP_MODE_FILTER,
                &prog as *const SockFprog,
                0,
                0,
            )
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(SeccompError::Load(Errno::last()))
        }
    }
}

/// Splits libseccomp's exported BPF (native-endian `struct sock_filter` array) into
/// instructions.
fn parse_bpf(bpf: &[u8]) -> Result<Vec<SockFilter>, SeccompError> {
    const SIZE: usize = std::mem::size_of::<SockFilter>();
    if bpf.is_empty() || !bpf.chunks_exact(SIZE).remainder().is_empty() {
        return Err(SeccompError::Other(format!(
            "libseccomp exported {} bytes of BPF, not a whole number of instructions",
            bpf.len()
        )));
    }
    if bpf.len() / SIZE > usize::from(u16::MAX) {
        return Err(SeccompError::Invalid(format!(
            "filter has {} instructions, too many",
            bpf.len() / SIZE
        )));
    }
    Ok(bpf
        .chunks_exact(SIZE)
        .map(|insn| SockFilter {
            code: u16::from_ne_bytes([insn[0], insn[1]]),
            jt: insn[2],
            jf: insn[3],
            k: u32::from_ne_bytes([insn[4], insn[5], insn[6], insn[7]]),
        })
        .collect())
}

#[cfg(test)]
mod tests;
