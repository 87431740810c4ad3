//! Overlay mounts (image layers). With the new mount API each lower layer is passed on its own
//! (`lowerdir+`, Linux 6.8+), so the number of layers is not limited by the one-page option
//! string of mount(2); mount(2) is the fallback on older kernels.

use std::ffi::{CStr, CString, OsStr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::mount::{umount2, MntFlags, MsFlags};

use super::RootfsError;

const FSOPEN_CLOEXEC: libc::c_uint = 0x1;
const FSCONFIG_SET_STRING: libc::c_uint = 1;
const FSCONFIG_CMD_CREATE: libc::c_uint = 6;
const FSMOUNT_CLOEXEC: libc::c_uint = 0x1;
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x4;
/// The longest data string mount(2) accepts (one page, NUL included).
const MAX_MOUNT_DATA: usize = 4095;

/// Mounts an overlay of `lowers` (top-most first) with `upper` and `work` at `target`.
/// Works with 128 lowers (the option string is limited to one page).
///
/// An empty `upper` makes a read-only overlay of the lowers alone (`work` is then ignored).
pub fn mount(
    lowers: &[PathBuf],
    upper: &Path,
    work: &Path,
    target: &Path,
) -> Result<(), RootfsError> {
    if lowers.is_empty() {
        return Err(RootfsError::Invalid(
            "overlay needs at least one lower dir".into(),
        ));
    }
    let upper_work = (!upper.as_os_str().is_empty()).then_some((upper, work));
    match mount_with_fs_context(lowers, upper_work, target) {
        Ok(()) => Ok(()),
        // No new mount API, or no `lowerdir+` (before 6.8): mount(2).
        Err(Failure::Unsupported) => mount_classic(lowers, upper_work, target),
        Err(Failure::Failed(e)) => Err(e),
    }
}

/// Unmounts an overlay (lazily if busy). A target that is not mounted is fine.
pub fn unmount(target: &Path) -> Result<(), RootfsError> {
    match umount2(target, MntFlags::empty()) {
        Ok(()) | Err(Errno::EINVAL) | Err(Errno::ENOENT) => Ok(()),
        Err(Errno::EBUSY) => umount2(target, MntFlags::MNT_DETACH)
            .map_err(|e| RootfsError::sys(format!("detach overlay {}", target.display()), e)),
        Err(e) => Err(RootfsError::sys(
            format!("unmount overlay {}", target.display()),
            e,
        )),
    }
}

enum Failure {
    Unsupported,
    Failed(RootfsError),
}

fn cstring(bytes: &[u8]) -> Result<CString, Failure> {
    CString::new(bytes)
        .map_err(|_| Failure::Failed(RootfsError::Invalid("overlay path contains NUL".into())))
}

/// fsopen("overlay") + one fsconfig per option + fsmount + move_mount.
fn mount_with_fs_context(
    lowers: &[PathBuf],
    upper_work: Option<(&Path, &Path)>,
    target: &Path,
) -> Result<(), Failure> {
    // SAFETY: a NUL-terminated static name and a flag; the result is checked below.
    let fd = unsafe { libc::syscall(libc::SYS_fsopen, c"overlay".as_ptr(), FSOPEN_CLOEXEC) };
    let fs = match Errno::result(fd) {
        // SAFETY: fsopen returned a new fd that nothing else owns.
        Ok(fd) => unsafe { OwnedFd::from_raw_fd(fd as i32) },
        Err(Errno::ENOSYS) => return Err(Failure::Unsupported),
        Err(e) => return Err(Failure::Failed(RootfsError::sys("fsopen overlay", e))),
    };
    for (i, lower) in lowers.iter().enumerate() {
        let value = cstring(lower.as_os_str().as_bytes())?;
        match set_string(&fs, c"lowerdir+", &value) {
            Ok(()) => {}
            Err(Errno::EINVAL) if i == 0 && fs_message(&fs).contains("lowerdir+") => {
                return Err(Failure::Unsupported)
            }
            Err(e) => {
                return Err(failed(&fs, format!("overlay lower {}", lower.display()), e));
            }
        }
    }
    if let Some((upper, work)) = upper_work {
        for (key, path) in [(c"upperdir", upper), (c"workdir", work)] {
            let value = cstring(path.as_os_str().as_bytes())?;
            set_string(&fs, key, &value)
                .map_err(|e| failed(&fs, format!("overlay {key:?} {}", path.display()), e))?;
        }
    }
    // SAFETY: a valid fs context fd, a command without key/value.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fs.as_raw_fd(),
            FSCONFIG_CMD_CREATE,
            std::ptr::null::<libc::c_char>(),
            std::ptr::null::<libc::c_void>(),
            0,
        )
    };
    Errno::result(ret).map_err(|e| failed(&fs, "create overlay".into(), e))?;
    // SAFETY: a valid fs context fd and flags; the result is checked below.
    let mfd = unsafe { libc::syscall(libc::SYS_fsmount, fs.as_raw_fd(), FSMOUNT_CLOEXEC, 0) };
    let mnt = match Errno::result(mfd) {
        // SAFETY: fsmount returned a new fd that nothing else owns.
        Ok(fd) => unsafe { OwnedFd::from_raw_fd(fd as i32) },
        Err(e) => return Err(failed(&fs, "fsmount overlay".into(), e)),
    };
    let target_c = cstring(target.as_os_str().as_bytes())?;
    // SAFETY: a valid mount fd, NUL-terminated paths that outlive the call.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            mnt.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_FDCWD,
            target_c.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH,
        )
    };
    Errno::result(ret).map(drop).map_err(|e| {
        Failure::Failed(RootfsError::sys(
            format!("move overlay to {}", target.display()),
            e,
        ))
    })
}

fn set_string(fs: &OwnedFd, key: &CStr, value: &CStr) -> nix::Result<()> {
    // SAFETY: a valid fs context fd and NUL-terminated key and value that outlive the call.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fs.as_raw_fd(),
            FSCONFIG_SET_STRING,
            key.as_ptr(),
            value.as_ptr(),
            0,
        )
    };
    Errno::result(ret).map(drop)
}

/// The kernel's messages about a failed fs context (read from the context fd), e.g.
/// "e overlay: failed to resolve 'x': -2".
fn fs_message(fs: &OwnedFd) -> String {
    let mut all = String::new();
    let mut buf = [0u8; 1024];
    while let Ok(n) = nix::unistd::read(fs, &mut buf) {
        if n == 0 {
            break;
        }
        if !all.is_empty() {
            all.push_str("; ");
        }
        all.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    all
}

fn failed(fs: &OwnedFd, context: String, e: Errno) -> Failure {
    let message = fs_message(fs);
    let context = if message.is_empty() {
        context
    } else {
        format!("{context} ({message})")
    };
    Failure::Failed(RootfsError::sys(context, e))
}

/// Backslash-escapes the characters overlay's option parser splits on.
fn escape(path: &Path, out: &mut Vec<u8>) {
    for &b in path.as_os_str().as_bytes() {
        if matches!(b, b'\\' | b':' | b',') {
            out.push(b'\\');
        }
        out.push(b);
    }
}

/// The mount(2) data string; fails when it does not fit in a page.
fn classic_options(
    lowers: &[PathBuf],
    upper_work: Option<(&Path, &Path)>,
) -> Result<Vec<u8>, RootfsError> {
    let mut data = b"lowerdir=".to_vec();
    for (i, lower) in lowers.iter().enumerate() {
        if i > 0 {
            data.push(b':');
        }
        escape(lower, &mut data);
    }
    if let Some((upper, work)) = upper_work {
        data.extend_from_slice(b",upperdir=");
        escape(upper, &mut data);
        data.extend_from_slice(b",workdir=");
        escape(work, &mut data);
    }
    if data.len() > MAX_MOUNT_DATA {
        return Err(RootfsError::Invalid(format!(
            "overlay options are {} bytes, more than mount(2) accepts ({MAX_MOUNT_DATA}) and \
             this kernel has no lowerdir+ (Linux 6.8+)",
            data.len()
        )));
    }
    Ok(data)
}

fn mount_classic(
    lowers: &[PathBuf],
    upper_work: Option<(&Path, &Path)>,
    target: &Path,
) -> Result<(), RootfsError> {
    let data = classic_options(lowers, upper_work)?;
    nix::mount::mount(
        Some("overlay"),
        target,
        Some("overlay"),
        MsFlags::empty(),
        Some(OsStr::from_bytes(&data)),
    )
    .map_err(|e| RootfsError::sys(format!("mount overlay on {}", target.display()), e))
}

#[cfg(test)]
mod tests {}
