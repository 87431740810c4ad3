//! Disk usage of snapshots (bytes allocated and inodes), for `ps --size` and CRI's
//! ImageFsInfo.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use super::Snapshotter;
use crate::ImageError;

/// Bytes allocated on disk and inodes used.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub bytes: u64,
    pub inodes: u64,
}

/// The usage of a tree (hardlinked inodes counted once; not crossing mount points).
pub(crate) fn tree_usage(root: &Path) -> Usage {
    let mut usage = Usage::default();
    let mut seen = std::collections::HashSet::new();
    let Ok(top) = fs::symlink_metadata(root) else {
        return usage;
    };
    let dev = top.dev();
    let mut stack = vec![(root.to_path_buf(), top)];
    while let Some((path, meta)) = stack.pop() {
        if meta.dev() != dev || (meta.nlink() > 1 && !meta.is_dir() && !seen.insert(meta.ino())) {
            continue;
        }
        usage.bytes += meta.blocks() * 512;
        usage.inodes += 1;
        if meta.is_dir() {
            if let Ok(rd) = fs::read_dir(&path) {
                for e in rd.flatten() {
                    if let Ok(m) = e.metadata() {
                        stack.push((e.path(), m));
                    }
                }
            }
        }
    }
    usage
}

impl Snapshotter {
    /// What active snapshot `key` wrote (its upper dir).
    pub fn usage(&self, key: &str) -> Result<Usage, ImageError> {
        Ok(tree_usage(&self.mounts(key)?.upper))
    }

    /// Everything under the snapshotter's root.
    pub fn disk_usage(&self) -> Usage {
        tree_usage(&self.root)
    }
}
