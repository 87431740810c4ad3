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
const FSCONFIG_SET_FLAG: libc::c_uint = 0;
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
    mount_with(lowers, upper, work, target, Durability::Synced)
}

/// Whether an overlay's upper layer must survive a host crash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// Unmounting syncs the upper filesystem (overlay's default).
    Synced,
    /// For a writable layer that is thrown away after one use (`run --rm`): overlay's
    /// `volatile` option skips every sync, so unmounting does not wait for the upper
    /// filesystem's journal (a whole-filesystem `syncfs`, up to a second on a busy disk).
    /// Kernels without the option (before 5.10) get a synced mount instead.
    Volatile,
}

/// [`mount`] with a choice of durability for the upper layer.
pub fn mount_with(
    lowers: &[PathBuf],
    upper: &Path,
    work: &Path,
    target: &Path,
    durability: Durability,
) -> Result<(), RootfsError> {
    if lowers.is_empty() {
        return Err(RootfsError::Invalid(
            "overlay needs at least one lower dir".into(),
        ));
    }
    let upper_work = (!upper.as_os_str().is_empty()).then_some((upper, work));
    let volatile = durability == Durability::Volatile && upper_work.is_some();
    if volatile {
        // A volatile mount leaves `work/work/incompat/volatile` behind and the kernel refuses
        // to mount the same dirs again while it exists. The layer is disposable by contract.
        let marker = work.join("work/incompat/volatile");
        match std::fs::remove_dir_all(&marker) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                let errno = Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO));
                return Err(RootfsError::sys(
                    format!("remove {}", marker.display()),
                    errno,
                ));
            }
        }
    }
    match mount_any(lowers, upper_work, target, volatile) {
        Err(e) if volatile && e.errno() == Some(Errno::EINVAL) => {
            tracing::debug!("overlay has no volatile option here; mounting synced");
            mount_any(lowers, upper_work, target, false)
        }
        other => other,
    }
}

fn mount_any(
    lowers: &[PathBuf],
    upper_work: Option<(&Path, &Path)>,
    target: &Path,
    volatile: bool,
) -> Result<(), RootfsError> {
    match mount_with_fs_context(lowers, upper_work, target, volatile) {
        Ok(()) => Ok(()),
        // No new mount API, or no `lowerdir+` (before 6.8): mount(2).
        Err(Failure::Unsupported) => mount_classic(lowers, upper_work, target, volatile),
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
    volatile: bool,
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
        if volatile {
            set_flag(&fs, c"volatile").map_err(|e| failed(&fs, "overlay volatile".into(), e))?;
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

fn set_flag(fs: &OwnedFd, key: &CStr) -> nix::Result<()> {
    // SAFETY: a valid fs context fd and a NUL-terminated key that outlives the call.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fs.as_raw_fd(),
            FSCONFIG_SET_FLAG,
            key.as_ptr(),
            std::ptr::null::<libc::c_void>(),
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
    volatile: bool,
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
        if volatile {
            data.extend_from_slice(b",volatile");
        }
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
    volatile: bool,
) -> Result<(), RootfsError> {
    let data = classic_options(lowers, upper_work, volatile)?;
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
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    static COUNTER: AtomicUsize = AtomicUsize::new(0);

    /// Unmounts the target on drop, even when an assertion failed.
    struct Mounted(PathBuf);

    impl Drop for Mounted {
        fn drop(&mut self) {
            let _ = umount2(&self.0, MntFlags::MNT_DETACH);
        }
    }

    fn is_mounted(target: &Path) -> bool {
        let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        let target = target.to_str().unwrap();
        info.lines().any(|l| l.split(' ').nth(4) == Some(target))
    }

    fn scratch() -> tempfile::TempDir {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        tempfile::Builder::new()
            .prefix(&format!("berth-overlay-{}-{n}-", std::process::id()))
            .tempdir()
            .unwrap()
    }

    #[test]
    fn overlay_with_128_lowers_longer_than_a_page() {
        let dir = scratch();
        let mut lowers = Vec::new();
        for i in 0..128 {
            // Long names: the classic option string would be far over one page.
            let lower = dir.path().join(format!("layer-{i:03}-{}", "x".repeat(40)));
            std::fs::create_dir(&lower).unwrap();
            std::fs::write(lower.join(format!("file{i}")), format!("{i}")).unwrap();
            std::fs::write(lower.join("shadowed"), format!("{i}")).unwrap();
            lowers.push(lower);
        }
        assert!(classic_options(&lowers, None, false).is_err());
        let (upper, work, merged) = (
            dir.path().join("upper"),
            dir.path().join("work"),
            dir.path().join("merged"),
        );
        for d in [&upper, &work, &merged] {
            std::fs::create_dir(d).unwrap();
        }
        mount(&lowers, &upper, &work, &merged).unwrap();
        let guard = Mounted(merged.clone());
        assert!(is_mounted(&merged));
        for i in 0..128 {
            let content = std::fs::read_to_string(merged.join(format!("file{i}"))).unwrap();
            assert_eq!(content, i.to_string());
        }
        // The first lower is the top-most one.
        assert_eq!(
            std::fs::read_to_string(merged.join("shadowed")).unwrap(),
            "0"
        );
        std::fs::write(merged.join("new"), "written").unwrap();
        std::fs::write(merged.join("file5"), "changed").unwrap();
        assert_eq!(
            std::fs::read_to_string(upper.join("new")).unwrap(),
            "written"
        );
        assert_eq!(
            std::fs::read_to_string(upper.join("file5")).unwrap(),
            "changed"
        );
        assert_eq!(
            std::fs::read_to_string(lowers[5].join("file5")).unwrap(),
            "5"
        );

        unmount(&merged).unwrap();
        assert!(!is_mounted(&merged));
        assert!(!merged.join("file0").exists());
        // Unmounting again is fine.
        unmount(&merged).unwrap();
        drop(guard);
    }

    #[test]
    fn read_only_overlay_without_upper() {
        let dir = scratch();
        let lowers: Vec<PathBuf> = (0..2).map(|i| dir.path().join(format!("l{i}"))).collect();
        for (i, l) in lowers.iter().enumerate() {
            std::fs::create_dir(l).unwrap();
            std::fs::write(l.join(format!("f{i}")), "x").unwrap();
        }
        let merged = dir.path().join("merged");
        std::fs::create_dir(&merged).unwrap();
        mount(&lowers, Path::new(""), Path::new(""), &merged).unwrap();
        let _guard = Mounted(merged.clone());
        assert!(merged.join("f0").exists() && merged.join("f1").exists());
        let err = std::fs::write(merged.join("new"), "x").unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EROFS));
        unmount(&merged).unwrap();
        assert!(!is_mounted(&merged));
    }

    fn mount_options(target: &Path) -> String {
        let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        let target = target.to_str().unwrap();
        info.lines()
            .find(|l| l.split(' ').nth(4) == Some(target))
            .map(|l| l.rsplit(' ').next().unwrap_or("").to_string())
            .unwrap_or_default()
    }

    #[test]
    fn volatile_overlay_mounts_again_after_unmount() {
        let dir = scratch();
        let lower = dir.path().join("l");
        let (upper, work, merged) = (
            dir.path().join("u"),
            dir.path().join("w"),
            dir.path().join("m"),
        );
        for d in [&lower, &upper, &work, &merged] {
            std::fs::create_dir(d).unwrap();
        }
        // The second round finds the kernel's incompat/volatile marker and must clear it.
        for round in 0..2 {
            mount_with(
                std::slice::from_ref(&lower),
                &upper,
                &work,
                &merged,
                Durability::Volatile,
            )
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
            let _guard = Mounted(merged.clone());
            assert!(mount_options(&merged).contains("volatile"), "round {round}");
            std::fs::write(merged.join(format!("f{round}")), "x").unwrap();
            unmount(&merged).unwrap();
            assert!(!is_mounted(&merged));
        }
        assert!(upper.join("f0").exists() && upper.join("f1").exists());
    }

    #[test]
    fn classic_mount_escapes_paths() {
        let dir = scratch();
        let lowers: Vec<PathBuf> = ["a:b", "c,d"].iter().map(|n| dir.path().join(n)).collect();
        for l in &lowers {
            std::fs::create_dir(l).unwrap();
            std::fs::write(l.join(l.file_name().unwrap()), "x").unwrap();
        }
        let (upper, work, merged) = (
            dir.path().join("up"),
            dir.path().join("wo"),
            dir.path().join("merged"),
        );
        for d in [&upper, &work, &merged] {
            std::fs::create_dir(d).unwrap();
        }
        let data = classic_options(&lowers, Some((&upper, &work)), false).unwrap();
        assert!(String::from_utf8(data).unwrap().contains("a\\:b:"));
        mount_classic(&lowers, Some((&upper, &work)), &merged, false).unwrap();
        let _guard = Mounted(merged.clone());
        assert!(merged.join("a:b").exists() && merged.join("c,d").exists());
        unmount(&merged).unwrap();
        assert!(!is_mounted(&merged));
    }

    #[test]
    fn missing_lower_reports_the_kernel_message() {
        let dir = scratch();
        let merged = dir.path().join("merged");
        std::fs::create_dir(&merged).unwrap();
        let lowers = vec![dir.path().join("missing")];
        let err = mount(&lowers, Path::new(""), Path::new(""), &merged).unwrap_err();
        assert!(err.to_string().contains("missing"), "{err}");
        assert!(!is_mounted(&merged));
        assert!(mount(&[], Path::new(""), Path::new(""), &merged).is_err());
    }
}
