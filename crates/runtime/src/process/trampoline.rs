//! The exec trampoline (`trampoline/main.rs`) in a sealed memfd.
//!
//! A runtime binary that is not on a read-only mount (berth-oci started from its host path)
//! would otherwise have to re-execute itself from a read-only clone before creating a container
//! (see [`crate::protect_self_exe`]): a second start of the whole binary. Instead, the init
//! execs this few-hundred-byte program, which execs the container's program, so the image the
//! program is executed from (and that `#!/proc/self/exe` would name) is the sealed memfd. That
//! only suffices when no other process can address the init before it execs: see
//! [`covers`].

use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::OnceLock;

use oci_spec::runtime::{LinuxNamespaceType, Spec};

use super::init_reaper;
use super::namespaces::NamespacePlan;
use super::seccomp;

static PROGRAM: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/berth-exec"));

const F_SEALS: libc::c_int =
    libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;

/// The trampoline's memfd (close-on-exec), loaded once per process; None when this build has
/// no trampoline or the kernel refuses executable memfds (`vm.memfd_noexec = 2`).
pub(crate) fn fd() -> Option<RawFd> {
    static FD: OnceLock<Option<OwnedFd>> = OnceLock::new();
    FD.get_or_init(|| match load() {
        Ok(fd) => Some(fd),
        Err(e) => {
            tracing::debug!("exec trampoline unavailable: {e}");
            None
        }
    })
    .as_ref()
    .map(AsRawFd::as_raw_fd)
}

fn load() -> std::io::Result<OwnedFd> {
    if PROGRAM.is_empty() {
        return Err(std::io::Error::other("not built for this target"));
    }
    let name = c"berth-exec";
    let flags = libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING;
    // MFD_EXEC (Linux 6.3) states the intent where vm.memfd_noexec asks for it; older kernels
    // reject the flag and make every memfd executable.
    // SAFETY: memfd_create with a valid name; the fd is owned below.
    let mut raw = unsafe { libc::memfd_create(name.as_ptr(), flags | libc::MFD_EXEC) };
    if raw < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EINVAL) {
        // SAFETY: as above.
        raw = unsafe { libc::memfd_create(name.as_ptr(), flags) };
    }
    if raw < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: memfd_create returned a new fd nobody else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let mut file = std::fs::File::from(fd);
    file.write_all(PROGRAM)?;
    // SAFETY: fcntl on an fd we own.
    if unsafe { libc::fcntl(file.as_raw_fd(), libc::F_ADD_SEALS, F_SEALS) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(OwnedFd::from(file))
}

/// Whether an init described by `spec` can run from an unprotected runtime binary through the
/// trampoline. It must have a pid namespace of its own (nothing else can address it before
/// exec), exec its program itself (no `io.berth.init` reaper staying behind), and a seccomp
/// filter must let it call execveat. Anything else needs [`crate::protect_self_exe`].
pub(crate) fn covers(spec: &Spec, plan: &NamespacePlan) -> bool {
    let Some(linux) = spec.linux() else {
        return false;
    };
    let reaper = spec
        .annotations()
        .as_ref()
        .is_some_and(|a| a.contains_key(init_reaper::ANNOTATION));
    let execveat_allowed = linux
        .seccomp()
        .as_ref()
        .is_none_or(|s| seccomp::allows_unconditionally(s, "execveat"));
    plan.creates(LinuxNamespaceType::Pid) && !reaper && execveat_allowed && fd().is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::os::unix::process::CommandExt;

    #[test]
    fn the_trampoline_execs_its_first_argument_with_the_rest_as_argv() {
        let Some(fd) = fd() else {
            panic!("the trampoline was not built or could not be loaded");
        };
        let out = std::process::Command::new(format!("/proc/self/fd/{fd}"))
            .arg0("/bin/sh")
            .args(["sh", "-c", "echo \"$0 $1 $GREETING\"", "zero", "one"])
            .env("GREETING", "hello")
            .output()
            .expect("running the trampoline");
        assert!(out.status.success(), "{out:?}");
        assert_eq!(String::from_utf8_lossy(&out.stdout), "zero one hello\n");

        let missing = std::process::Command::new(format!("/proc/self/fd/{fd}"))
            .arg0("/nonexistent/program")
            .arg("program")
            .output()
            .expect("running the trampoline");
        assert_eq!(missing.status.code(), Some(127));
        assert!(String::from_utf8_lossy(&missing.stderr).contains("exec /nonexistent/program"));
    }

    #[test]
    fn the_memfd_is_sealed_against_writes() {
        let fd = fd().expect("trampoline");
        let err = std::fs::OpenOptions::new()
            .write(true)
            .open(format!("/proc/self/fd/{fd}"))
            .and_then(|mut f| f.write_all(b"x"));
        assert!(err.is_err(), "the trampoline could be overwritten");
    }
}
