//! File operations confined to a directory tree: every path is resolved from a directory fd
//! with `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)`, so no `..`, absolute path or symlink
//! (planted by an earlier entry of the same layer) can lead outside of it.

use std::ffi::{CString, OsStr};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{openat2, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::Mode;

use crate::ImageError;

/// Turns a tar entry path into a clean relative path: `./` and empty components dropped;
/// absolute paths and `..` rejected. `None` for the root itself.
pub(crate) fn clean_path(raw: &[u8]) -> Result<Option<PathBuf>, ImageError> {
    let shown = String::from_utf8_lossy(raw).into_owned();
    if raw.first() == Some(&b'/') {
        return Err(ImageError::unsafe_entry(shown, "absolute path"));
    }
    if raw.len() > 4096 {
        return Err(ImageError::unsafe_entry(
            shown,
            "path longer than 4096 bytes",
        ));
    }
    let mut out = PathBuf::new();
    for c in Path::new(OsStr::from_bytes(raw)).components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir => {}
            Component::ParentDir => return Err(ImageError::unsafe_entry(shown, "`..` in path")),
            Component::RootDir | Component::Prefix(_) => {
                return Err(ImageError::unsafe_entry(shown, "absolute path"))
            }
        }
    }
    Ok((!out.as_os_str().is_empty()).then_some(out))
}

fn entry_err(path: &Path, what: &str, e: Errno) -> ImageError {
    let reason = match e {
        Errno::ELOOP => format!("{what}: the path goes through a symlink"),
        Errno::EXDEV => format!("{what}: the path escapes the layer"),
        Errno::ENOTDIR => format!("{what}: a parent is not a directory"),
        e => format!("{what}: {e}"),
    };
    ImageError::unsafe_entry(path.display().to_string(), reason)
}

fn resolve_how(flags: OFlag) -> OpenHow {
    OpenHow::new().flags(flags | OFlag::O_CLOEXEC).resolve(
        ResolveFlag::RESOLVE_BENEATH
            | ResolveFlag::RESOLVE_NO_SYMLINKS
            | ResolveFlag::RESOLVE_NO_MAGICLINKS
            | ResolveFlag::RESOLVE_NO_XDEV,
    )
}

/// Opens the root of a tree (a directory) as an `O_PATH` fd.
pub(crate) fn open_root(path: &Path) -> Result<OwnedFd, ImageError> {
    nix::fcntl::open(
        path,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| ImageError::sys(format!("open {}", path.display()), e))
}

/// Opens an existing directory `rel` under `root` (no symlinks followed) as an `O_PATH` fd.
pub(crate) fn open_dir(root: &OwnedFd, rel: &Path) -> Result<OwnedFd, ImageError> {
    let rel: &Path = if rel.as_os_str().is_empty() {
        Path::new(".")
    } else {
        rel
    };
    openat2(root, rel, resolve_how(OFlag::O_PATH | OFlag::O_DIRECTORY))
        .map_err(|e| entry_err(rel, "open directory", e))
}

/// Creates the directories of `rel` under `root` as needed (mode 0755, root-owned) and opens
/// the last one. Existing symlinks are never followed.
pub(crate) fn mkdir_all(root: &OwnedFd, rel: &Path) -> Result<OwnedFd, ImageError> {
    let mut dir = open_dir(root, Path::new(""))?;
    for c in rel.components() {
        match nix::sys::stat::mkdirat(&dir, c.as_os_str(), Mode::from_bits_truncate(0o755)) {
            Ok(()) | Err(Errno::EEXIST) => {}
            Err(e) => return Err(entry_err(rel, "create parent directory", e)),
        }
        dir = openat2(
            &dir,
            c.as_os_str(),
            resolve_how(OFlag::O_PATH | OFlag::O_DIRECTORY),
        )
        .map_err(|e| entry_err(rel, "open parent directory", e))?;
    }
    Ok(dir)
}

/// The file type of `name` in `dir` (not following a symlink), if it exists.
pub(crate) fn file_type(dir: &OwnedFd, name: &OsStr) -> Option<libc::mode_t> {
    nix::sys::stat::fstatat(dir, name, nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW)
        .ok()
        .map(|st| st.st_mode & libc::S_IFMT)
}

/// Removes `name` in `dir` whatever it is (a directory recursively, symlinks not followed).
pub(crate) fn remove_any(dir: &OwnedFd, name: &OsStr) -> Result<(), ImageError> {
    match file_type(dir, name) {
        None => Ok(()),
        Some(libc::S_IFDIR) => {
            let p = proc_path(dir, name);
            // std's remove_dir_all does not follow symlinks inside the tree.
            std::fs::remove_dir_all(&p).map_err(|e| ImageError::io_path("remove", &p, e))
        }
        Some(_) => nix::unistd::unlinkat(dir, name, nix::unistd::UnlinkatFlags::NoRemoveDir)
            .map_err(|e| ImageError::sys(format!("unlink {}", name.to_string_lossy()), e)),
    }
}

/// `/proc/self/fd/<dir>/<name>`: a path to `name` in `dir` for calls without an `*at` form
/// (the last component is never followed when used with `l*` calls).
pub(crate) fn proc_path(dir: &impl AsRawFd, name: &OsStr) -> PathBuf {
    Path::new(&format!("/proc/self/fd/{}", dir.as_raw_fd())).join(name)
}

/// Sets an extended attribute on `name` in `dir` without following a symlink.
pub(crate) fn set_xattr(dir: &OwnedFd, name: &OsStr, key: &str, value: &[u8]) -> nix::Result<()> {
    let path =
        CString::new(proc_path(dir, name).as_os_str().as_bytes()).map_err(|_| Errno::EINVAL)?;
    let key = CString::new(key).map_err(|_| Errno::EINVAL)?;
    // SAFETY: NUL-terminated path and key and a value buffer that outlive the call.
    let ret = unsafe {
        libc::lsetxattr(
            path.as_ptr(),
            key.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    Errno::result(ret).map(drop)
}

/// Lists the extended attributes of a path (not following a symlink).
pub(crate) fn list_xattrs(path: &Path) -> Vec<(String, Vec<u8>)> {
    let Ok(cpath) = CString::new(path.as_os_str().as_bytes()) else {
        return Vec::new();
    };
    let mut names = vec![0u8; 4096];
    // SAFETY: a NUL-terminated path and a buffer of the given length.
    let n = unsafe { libc::llistxattr(cpath.as_ptr(), names.as_mut_ptr().cast(), names.len()) };
    if n <= 0 {
        return Vec::new();
    }
    names.truncate(n as usize);
    let mut out = Vec::new();
    for key in names.split(|&b| b == 0).filter(|k| !k.is_empty()) {
        let Ok(ckey) = CString::new(key) else {
            continue;
        };
        let mut value = vec![0u8; 65536];
        // SAFETY: NUL-terminated path and key, a buffer of the given length.
        let len = unsafe {
            libc::lgetxattr(
                cpath.as_ptr(),
                ckey.as_ptr(),
                value.as_mut_ptr().cast(),
                value.len(),
            )
        };
        if len < 0 {
            continue;
        }
        value.truncate(len as usize);
        out.push((String::from_utf8_lossy(key).into_owned(), value));
    }
    out
}

/// Whether an image layer may carry this extended attribute.
pub(crate) fn xattr_allowed(key: &str) -> bool {
    (key.starts_with("user.") || key.starts_with("trusted.") || key == "security.capability")
        && !key.starts_with("trusted.overlay.")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_paths() {
        let ok = |s: &str| clean_path(s.as_bytes()).unwrap();
        assert_eq!(ok("./a/b/"), Some(PathBuf::from("a/b")));
        assert_eq!(ok("a//b/./c"), Some(PathBuf::from("a/b/c")));
        assert_eq!(ok("./"), None);
        for bad in ["/etc/passwd", "../x", "a/../../x", "a/.."] {
            assert!(clean_path(bad.as_bytes()).is_err(), "{bad}");
        }
    }

    #[test]
    fn symlinked_parents_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join("link")).unwrap();
        let root = open_root(dir.path()).unwrap();
        let err = mkdir_all(&root, Path::new("link/sub")).unwrap_err();
        assert!(err.to_string().contains("symlink"), "{err}");
        assert!(open_dir(&root, Path::new("link")).is_err());
        assert!(!outside.path().join("sub").exists());
        let d = mkdir_all(&root, Path::new("a/b")).unwrap();
        drop(d);
        assert!(dir.path().join("a/b").is_dir());
    }
}
