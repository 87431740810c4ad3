//! Mount propagation of "/" and of the rootfs, before and after pivot_root.

use std::path::Path;

use nix::mount::{mount, MsFlags};

use super::mount_options::parse_propagation;
use super::RootfsError;

const NONE: Option<&str> = None;

/// The flags for "/" from `linux.rootfsPropagation`, `MS_REC|MS_SLAVE` when unset (like runc).
fn root_flags(value: Option<&str>) -> Result<MsFlags, RootfsError> {
    match value {
        None | Some("") => Ok(MsFlags::MS_REC | MsFlags::MS_SLAVE),
        Some(v) => parse_propagation(v)
            .ok_or_else(|| RootfsError::Invalid(format!("invalid rootfsPropagation {v:?}"))),
    }
}

/// Sets the propagation of "/" recursively, then bind-mounts the rootfs onto itself (so that it
/// is a mount point pivot_root accepts) and makes that bind and its parent mount private.
pub(super) fn prepare_root(rootfs: &Path, value: Option<&str>) -> Result<(), RootfsError> {
    let flags = root_flags(value)?;
    mount(NONE, "/", NONE, flags, NONE)
        .map_err(|e| RootfsError::sys(format!("set propagation {flags:?} on /"), e))?;
    make_parent_private(rootfs)?;
    mount(
        Some(rootfs),
        rootfs,
        NONE,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        NONE,
    )
    .map_err(|e| RootfsError::sys(format!("bind rootfs {} onto itself", rootfs.display()), e))?;
    mount(NONE, rootfs, NONE, MsFlags::MS_PRIVATE, NONE)
        .map_err(|e| RootfsError::sys(format!("make rootfs {} private", rootfs.display()), e))
}

/// pivot_root refuses a new root whose parent mount is shared: make that mount private (only
/// when it is shared, as runc does).
fn make_parent_private(rootfs: &Path) -> Result<(), RootfsError> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").map_err(|e| {
        RootfsError::sys(
            "read /proc/self/mountinfo",
            nix::Error::from_raw(e.raw_os_error().unwrap_or(libc::EIO)),
        )
    })?;
    // mountinfo has resolved paths.
    let rootfs = std::fs::canonicalize(rootfs).unwrap_or_else(|_| rootfs.to_path_buf());
    let Some((mount_point, shared)) = parent_mount(&mountinfo, &rootfs) else {
        return Ok(());
    };
    if !shared {
        return Ok(());
    }
    mount(NONE, mount_point.as_str(), NONE, MsFlags::MS_PRIVATE, NONE)
        .map_err(|e| RootfsError::sys(format!("make {mount_point} private"), e))
}

/// The mount point (and whether it is shared) of the longest mount that contains `path`'s
/// parent, from mountinfo text. Mount points use octal escapes (`\040` for a space).
fn parent_mount(mountinfo: &str, path: &Path) -> Option<(String, bool)> {
    let parent = path.parent().unwrap_or(path);
    let mut best: Option<(String, bool)> = None;
    for line in mountinfo.lines() {
        let mut fields = line.split(' ');
        let Some(raw_point) = fields.nth(4) else {
            continue;
        };
        let point = unescape(raw_point);
        if !parent.starts_with(&point) {
            continue;
        }
        let shared = fields
            .skip(1)
            .take_while(|f| *f != "-")
            .any(|f| f.starts_with("shared:"));
        // Later lines are mounted on top of earlier ones at the same point.
        if best.as_ref().is_none_or(|(b, _)| point.len() >= b.len()) {
            best = Some((point, shared));
        }
    }
    best
}

fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 3 < bytes.len() {
            let digits = &field[i + 1..i + 4];
            if let Ok(v) = u8::from_str_radix(digits, 8) {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// After pivot_root: when the spec asks for a shared or slave root, apply it to "/" (the rootfs
/// bind was made private for pivot_root).
pub(super) fn finalize_root(value: Option<&str>) -> Result<(), RootfsError> {
    let Some(v) = value.filter(|v| !v.is_empty()) else {
        return Ok(());
    };
    let flags = root_flags(Some(v))?;
    if !flags.intersects(MsFlags::MS_SHARED | MsFlags::MS_SLAVE) {
        return Ok(());
    }
    mount(NONE, "/", NONE, flags, NONE)
        .map_err(|e| RootfsError::sys(format!("set propagation {flags:?} on / after pivot"), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    const INFO: &str = "27 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw\n\
        40 27 0:40 / /tmp rw,relatime - tmpfs tmpfs rw\n\
        41 40 0:41 / /tmp/a\\040b rw master:3 - tmpfs tmpfs rw\n";

    #[test]
    fn finds_the_longest_containing_mount() {
        assert_eq!(
            parent_mount(INFO, Path::new("/var/lib/x/rootfs")),
            Some(("/".to_string(), true))
        );
        assert_eq!(
            parent_mount(INFO, Path::new("/tmp/b/rootfs")),
            Some(("/tmp".to_string(), false))
        );
        assert_eq!(
            parent_mount(INFO, Path::new("/tmp/a b/rootfs")),
            Some(("/tmp/a b".to_string(), false))
        );
    }

    #[test]
    fn default_root_propagation_is_rslave() {
        assert_eq!(
            root_flags(None).unwrap(),
            MsFlags::MS_REC | MsFlags::MS_SLAVE
        );
        assert_eq!(
            root_flags(Some("rshared")).unwrap(),
            MsFlags::MS_REC | MsFlags::MS_SHARED
        );
        assert!(root_flags(Some("nosuid")).is_err());
    }
}
