//! Protection of the runtime's own binary (the CVE-2019-5736 class).
//!
//! A container process that can open `/proc/<runtime pid>/exe` for writing could overwrite the
//! host binary. We re-execute ourselves from a read-only, detached clone of the binary's mount
//! (`open_tree(OPEN_TREE_CLONE)` + `mount_setattr(MOUNT_ATTR_RDONLY)`): `/proc/<pid>/exe` then
//! names a file on a read-only mount that no path on the host reaches, so opening it for
//! writing fails with EROFS. No copy of the binary is made and nothing needs cleaning up.

use std::ffi::{CString, OsString};
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStringExt;

use nix::sys::statvfs::{statvfs, FsFlags};

use crate::{Error, Result};

const OPEN_TREE_CLONE: libc::c_uint = 1;
const MOUNT_ATTR_RDONLY: u64 = 0x0000_0001;

#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// Re-executes the current binary through a read-only, detached clone of its mount, so that no
/// container process can ever open the host binary for writing through `/proc/<pid>/exe`.
/// Call it first thing in `main()` of every binary that creates container processes. In the
/// re-executed process (its exe is already on a read-only mount) it returns at once.
pub fn protect_self_exe() -> Result<()> {
    if exe_is_protected(None) {
        return Ok(());
    }
    tracing::debug!("re-executing from a read-only clone of our binary");
    let tree = open_readonly_tree(c"/proc/self/exe")?;
    let argv: Vec<CString> = std::env::args_os()
        .map(|a| CString::new(a.into_vec()))
        .collect::<std::result::Result<_, _>>()
        .map_err(|_| Error::Init("an argument contains NUL".into()))?;
    let envp: Vec<CString> = std::env::vars_os()
        .map(|(k, v)| {
            let mut kv = k;
            kv.push("=");
            kv.push(v);
            CString::new(OsString::into_vec(kv))
        })
        .collect::<std::result::Result<_, _>>()
        .map_err(|_| Error::Init("an environment variable contains NUL".into()))?;
    let err = nix::unistd::execveat(&tree, c"", &argv, &envp, nix::fcntl::AtFlags::AT_EMPTY_PATH);
    match err {
        Err(e) => Err(Error::sys("re-executing from a read-only mount", e)),
    }
}

/// Whether process `pid` (None: this process) runs from a binary on a read-only mount, which no
/// container process can open for writing.
pub fn exe_is_protected(pid: Option<i32>) -> bool {
    let path = match pid {
        Some(pid) => format!("/proc/{pid}/exe"),
        None => "/proc/self/exe".to_string(),
    };
    statvfs(path.as_str()).is_ok_and(|s| s.flags().contains(FsFlags::ST_RDONLY))
}

/// Whether [`crate::Runtime::create`] of `spec` needs [`protect_self_exe`] first. It does not
/// when this process is protected already, nor when the container's init can end in the exec
/// trampoline instead (its own pid namespace, no init reaper, execveat allowed by seccomp):
/// then berth-oci saves the second start of its binary. A spec that cannot be read says yes.
pub fn create_needs_protected_exe(spec: &oci_spec::runtime::Spec) -> bool {
    if exe_is_protected(None) {
        return false;
    }
    let Some(linux) = spec.linux() else {
        return true;
    };
    match crate::process::namespaces::NamespacePlan::from_spec(linux) {
        Ok(plan) => !crate::process::trampoline::covers(spec, &plan),
        Err(_) => true,
    }
}

/// A read-only, detached clone of the mount of the binary at `path`, as an fd of the binary
/// itself. Executing it (`/proc/self/fd/<fd>`) starts a process that is protected already:
/// [`protect_self_exe`] then returns at once instead of executing the binary a second time.
/// The clone keeps the binary's inode: after the file is replaced, take a new clone.
pub fn readonly_clone(path: &std::path::Path) -> Result<OwnedFd> {
    let c = CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|_| Error::Init(format!("{} contains NUL", path.display())))?;
    open_readonly_tree(&c)
}

fn open_readonly_tree(path: &std::ffi::CStr) -> Result<OwnedFd> {
    // SAFETY: plain syscalls with valid pointers; the returned fd is owned below.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            libc::AT_FDCWD,
            path.as_ptr(),
            OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint,
        )
    };
    if fd < 0 {
        return Err(Error::sys(
            "open_tree of our own binary",
            nix::errno::Errno::last(),
        ));
    }
    // SAFETY: open_tree returned a new fd that nothing else owns.
    let tree = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_RDONLY,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    // SAFETY: attr outlives the call and its size is passed.
    let r = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd as i32,
            c"".as_ptr(),
            libc::AT_EMPTY_PATH,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if r < 0 {
        return Err(Error::sys(
            "making the clone of our binary read-only",
            nix::errno::Errno::last(),
        ));
    }
    Ok(tree)
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsRawFd;

    use super::*;

    #[test]
    fn a_readonly_clone_runs_and_cannot_be_written() {
        if !nix::unistd::geteuid().is_root() {
            return; // open_tree needs CAP_SYS_ADMIN
        }
        let fd = readonly_clone(std::path::Path::new("/bin/true")).expect("clone of /bin/true");
        let path = format!("/proc/self/fd/{}", fd.as_raw_fd());
        let flags = statvfs(path.as_str()).expect("statvfs of the clone");
        assert!(flags.flags().contains(FsFlags::ST_RDONLY));
        let err = std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EROFS), "{err}");
        let status = std::process::Command::new(&path)
            .status()
            .expect("running the clone");
        assert!(status.success());
    }
}
