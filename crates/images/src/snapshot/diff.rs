//! What an active snapshot changed relative to its parent chain.

use std::fs;
use std::path::{Path, PathBuf};

use super::commit::{is_opaque, is_whiteout};
use super::Snapshotter;
use crate::ImageError;

/// The kind of a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ChangeKind {
    Added,
    Modified,
    Deleted,
}

/// One changed path (absolute in the container, e.g. `/etc/passwd`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Change {
    pub kind: ChangeKind,
    pub path: String,
}

impl Snapshotter {
    /// The paths active snapshot `key` added, modified or deleted, sorted by path.
    pub fn diff(&self, key: &str) -> Result<Vec<Change>, ImageError> {
        let m = self.mounts(key)?;
        let mut out = Vec::new();
        walk(&m.upper, Path::new(""), &m.lowers, &mut out)
            .map_err(|e| ImageError::io(format!("diff {key}"), e))?;
        out.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(out)
    }
}

fn in_lowers(lowers: &[PathBuf], rel: &Path) -> bool {
    // A lower path that is whited out or hidden by an opaque dir above is still reported as
    // existing: good enough for a change listing.
    lowers
        .iter()
        .any(|l| fs::symlink_metadata(l.join(rel)).is_ok())
}

fn walk(
    upper: &Path,
    rel: &Path,
    lowers: &[PathBuf],
    out: &mut Vec<Change>,
) -> std::io::Result<()> {
    for entry in fs::read_dir(upper.join(rel))? {
        let entry = entry?;
        let rel_path = rel.join(entry.file_name());
        let full = upper.join(&rel_path);
        let meta = fs::symlink_metadata(&full)?;
        let shown = format!("/{}", rel_path.display());
        if is_whiteout(&meta) {
            out.push(Change {
                kind: ChangeKind::Deleted,
                path: shown,
            });
            continue;
        }
        let existed = in_lowers(lowers, &rel_path);
        let kind = if existed {
            ChangeKind::Modified
        } else {
            ChangeKind::Added
        };
        out.push(Change { kind, path: shown });
        if meta.is_dir() {
            if existed && is_opaque(&full) {
                // Everything the lowers had below it is gone unless re-added.
                for l in lowers {
                    if let Ok(rd) = fs::read_dir(l.join(&rel_path)) {
                        for e in rd.flatten() {
                            if fs::symlink_metadata(full.join(e.file_name())).is_err() {
                                out.push(Change {
                                    kind: ChangeKind::Deleted,
                                    path: format!("/{}", rel_path.join(e.file_name()).display()),
                                });
                            }
                        }
                    }
                }
            }
            walk(upper, &rel_path, lowers, out)?;
        }
    }
    Ok(())
}
