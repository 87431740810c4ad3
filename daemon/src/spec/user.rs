//! Resolving `--user` (name, uid, name:group, uid:gid) through the image's /etc/passwd and
//! /etc/group, read inside the container's rootfs without following links out of it.

use std::collections::HashSet;
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::Path;

use crate::error::ApiError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    pub home: Option<String>,
}

impl Resolved {
    /// The process runs as this user: uid, gid and additional groups.
    pub fn apply_to(&self, process: &mut oci_spec::runtime::Process) {
        let mut u = process.user().clone();
        u.set_uid(self.uid);
        u.set_gid(self.gid);
        u.set_additional_gids(Some(self.additional_gids.clone()));
        process.set_user(u);
    }
}

/// Resolves `user` against the rootfs. Numeric ids need no passwd entry.
pub fn resolve(rootfs: &Path, user: &str) -> Result<Resolved, ApiError> {
    let (u, g) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (if user.is_empty() { "0" } else { user }, None),
    };
    let passwd = read_in_root(rootfs, "etc/passwd").unwrap_or_default();
    let group = read_in_root(rootfs, "etc/group").unwrap_or_default();
    let entry = passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .filter(|f| f.len() >= 7)
        .find(|f| f[0] == u || (u.parse::<u32>().is_ok() && f[2] == u));
    let (uid, mut gid, home, name) = match (u.parse::<u32>(), &entry) {
        (Ok(uid), Some(f)) => (
            uid,
            f[3].parse().unwrap_or(0),
            Some(f[5].to_string()),
            Some(f[0]),
        ),
        (Ok(uid), None) => (uid, 0, None, None),
        (Err(_), Some(f)) => (
            f[2].parse()
                .map_err(|_| bad(user, "bad uid in /etc/passwd"))?,
            f[3].parse().unwrap_or(0),
            Some(f[5].to_string()),
            Some(f[0]),
        ),
        (Err(_), None) => return Err(bad(user, "no such user in the image's /etc/passwd")),
    };
    let groups: Vec<Vec<&str>> = group
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .filter(|f| f.len() >= 4)
        .collect();
    if let Some(g) = g {
        gid = match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => groups
                .iter()
                .find(|f| f[0] == g)
                .and_then(|f| f[2].parse().ok())
                .ok_or_else(|| bad(user, "no such group in the image's /etc/group"))?,
        };
    }
    let mut additional = Vec::new();
    let mut seen = HashSet::new();
    if let (Some(name), None) = (name, g) {
        for f in &groups {
            if f[3].split(',').any(|m| m == name) {
                if let Ok(n) = f[2].parse::<u32>() {
                    if n != gid && seen.insert(n) {
                        additional.push(n);
                    }
                }
            }
        }
    }
    Ok(Resolved {
        uid,
        gid,
        additional_gids: additional,
        home,
    })
}

fn bad(user: &str, why: &str) -> ApiError {
    ApiError::InvalidArgument(format!("user {user:?}: {why}"))
}

#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

const RESOLVE_NO_MAGICLINKS: u64 = 0x02;
const RESOLVE_IN_ROOT: u64 = 0x10;

/// Reads a small file of the rootfs as if the rootfs were `/`.
fn read_in_root(rootfs: &Path, path: &str) -> std::io::Result<String> {
    let root = std::fs::File::open(rootfs)?;
    let how = OpenHow {
        flags: (libc::O_RDONLY | libc::O_CLOEXEC) as u64,
        mode: 0,
        resolve: RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
    };
    let cpath = std::ffi::CString::new(path).map_err(std::io::Error::other)?;
    // SAFETY: valid pointers and the struct's size; the returned fd is owned below.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            std::os::fd::AsRawFd::as_raw_fd(&root),
            cpath.as_ptr(),
            &how as *const OpenHow,
            std::mem::size_of::<OpenHow>(),
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: a new fd from openat2.
    let file = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd as i32) });
    let mut out = String::new();
    std::io::Read::read_to_string(&mut std::io::Read::take(file, 4 << 20), &mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_ids_and_groups_resolve_and_links_stay_inside() {
        let dir = tempfile::tempdir().unwrap();
        let etc = dir.path().join("etc");
        std::fs::create_dir(&etc).unwrap();
        std::fs::write(
            etc.join("passwd"),
            "root:x:0:0:root:/root:/bin/sh\nweb:x:1000:1000:web:/home/web:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(
            etc.join("group"),
            "root:x:0:\nweb:x:1000:\nstaff:x:50:web,other\n",
        )
        .unwrap();
        let r = resolve(dir.path(), "web").unwrap();
        assert_eq!(
            (r.uid, r.gid, r.additional_gids.clone()),
            (1000, 1000, vec![50])
        );
        assert_eq!(r.home.as_deref(), Some("/home/web"));
        assert_eq!(resolve(dir.path(), "1000:staff").unwrap().gid, 50);
        assert_eq!(resolve(dir.path(), "4242").unwrap().uid, 4242);
        assert!(resolve(dir.path(), "nobody-here").is_err());
        // A passwd that is a symlink to the host's is read inside the rootfs (and is absent).
        let other = tempfile::tempdir().unwrap();
        std::fs::create_dir(other.path().join("etc")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", other.path().join("etc/passwd")).unwrap();
        assert!(resolve(other.path(), "root").is_err());
    }
}
