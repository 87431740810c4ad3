//! The host's device nodes, for `--privileged` containers (as docker gives them).

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use oci_spec::runtime::{LinuxDevice, LinuxDeviceBuilder, LinuxDeviceType};

/// Directories under /dev that hold no host devices of their own or that the container gets
/// its own copy of.
const SKIPPED_DIRS: &[&str] = &["pts", "shm", "fd", "mqueue", ".lxc", ".lxd-mounts", ".udev"];

/// Every character and block device under `dev` (normally `/dev`), except the console.
/// Unreadable entries are skipped: a privileged container gets what can be seen.
pub fn under(dev: &Path) -> Vec<LinuxDevice> {
    let mut out = Vec::new();
    walk(dev, dev, &mut out);
    out.sort_by(|a, b| a.path().cmp(b.path()));
    out
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<LinuxDevice>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        let ft = meta.file_type();
        if ft.is_dir() {
            let name = entry.file_name();
            if dir == root && SKIPPED_DIRS.iter().any(|s| name == **s) {
                continue;
            }
            walk(root, &path, out);
            continue;
        }
        let typ = if ft.is_char_device() {
            LinuxDeviceType::C
        } else if ft.is_block_device() {
            LinuxDeviceType::B
        } else {
            continue;
        };
        if path == root.join("console") {
            continue;
        }
        let rdev = meta.rdev();
        let built = LinuxDeviceBuilder::default()
            .path(path.clone())
            .typ(typ)
            .major(nix::sys::stat::major(rdev) as i64)
            .minor(nix::sys::stat::minor(rdev) as i64)
            .file_mode(meta.mode() & 0o777)
            .uid(meta.uid())
            .gid(meta.gid())
            .build();
        if let Ok(device) = built {
            out.push(device);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_dev_has_null_and_no_console_or_pts() {
        let devices = under(Path::new("/dev"));
        let null = devices
            .iter()
            .find(|d| d.path() == Path::new("/dev/null"))
            .expect("/dev/null listed");
        assert_eq!((null.major(), null.minor()), (1, 3));
        assert!(devices
            .iter()
            .all(|d| d.path() != Path::new("/dev/console")));
        assert!(devices.iter().all(|d| !d.path().starts_with("/dev/pts")));
    }
}
