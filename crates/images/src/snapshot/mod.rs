//! Overlay snapshots. Committed snapshots hold one unpacked layer each and are keyed by chain
//! ID (so images share them); active snapshots are an upper and a work dir over a committed
//! chain, mounted as an overlay for a container.
//!
//! Layout: `<root>/snapshots/<n>/fs` (and `/work` and `active.json` for active ones) with
//! short numeric names (overlay's option string stays short), `<root>/index.json` the
//! committed snapshots (see `index`), `<root>/empty` the lower dir of snapshots without a
//! parent. Directories neither in the index nor holding an active record (left by a crash)
//! are removed when the snapshotter is opened.

mod active;
mod commit;
mod diff;
mod index;
mod trash;
mod unpack;
mod usage;

#[cfg(test)]
mod tests;

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, RwLock};

pub use commit::CommittedLayer;
pub use diff::{Change, ChangeKind};
pub use unpack::{image_chain_id, UnpackedImage};
pub use usage::Usage;

use crate::ImageError;
pub use berth_runtime::rootfs::overlay::Durability;
use index::{Active, Index};

/// The directories of an active snapshot's overlay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mounts {
    /// Lower dirs, top-most first.
    pub lowers: Vec<PathBuf>,
    pub upper: PathBuf,
    pub work: PathBuf,
}

/// Overlay snapshots under one root; see the module docs.
#[derive(Debug)]
pub struct Snapshotter {
    root: PathBuf,
    index: Mutex<Index>,
    /// Unpack and prepare hold it shared, gc exclusively: gc never removes a chain that an
    /// unpack is building on.
    ops: RwLock<()>,
}

impl Snapshotter {
    /// Opens (creating) the snapshotter at `root` and removes leftovers of interrupted work.
    pub fn open(root: &Path) -> Result<Snapshotter, ImageError> {
        let snaps = root.join("snapshots");
        for dir in [&snaps, &root.join("empty")] {
            fs::create_dir_all(dir).map_err(|e| ImageError::io_path("create", dir, e))?;
        }
        let index_path = root.join("index.json");
        let mut index = Index::load(&index_path)?;
        // Active snapshots an older version kept in the index get their own records.
        let legacy = std::mem::take(&mut index.active);
        for (key, a) in &legacy {
            let dir = snaps.join(a.id.to_string());
            if dir.is_dir() && active::read(&dir).is_none() {
                let record = active::Record {
                    key: key.clone(),
                    parent: a.parent.clone(),
                };
                active::write(&dir, &record, Durability::Synced)
                    .map_err(|e| ImageError::io_path("write", &dir, e))?;
            }
        }
        if !legacy.is_empty() {
            index.save(&index_path)?;
        }
        let committed: std::collections::HashSet<u64> =
            index.committed.values().map(|c| c.id).collect();
        for entry in fs::read_dir(&snaps).map_err(|e| ImageError::io_path("list", &snaps, e))? {
            let entry = entry.map_err(|e| ImageError::io_path("list", &snaps, e))?;
            let id = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u64>().ok());
            let Some(id) = id else {
                let _ = fs::remove_dir_all(entry.path());
                continue;
            };
            // Ids handed to active snapshots are not saved in the index: never reuse one.
            index.next_id = index.next_id.max(id + 1);
            if committed.contains(&id) {
                continue;
            }
            match active::read(&entry.path()) {
                Some(r) if !index.active.contains_key(&r.key) => {
                    index.active.insert(
                        r.key,
                        Active {
                            id,
                            parent: r.parent,
                        },
                    );
                }
                _ => {
                    let _ = fs::remove_dir_all(entry.path());
                }
            }
        }
        Ok(Snapshotter {
            root: root.to_path_buf(),
            index: Mutex::new(index),
            ops: RwLock::new(()),
        })
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Index>, ImageError> {
        self.index
            .lock()
            .map_err(|_| ImageError::Snapshot("index lock poisoned".into()))
    }

    pub(crate) fn shared_op(&self) -> Result<std::sync::RwLockReadGuard<'_, ()>, ImageError> {
        self.ops
            .read()
            .map_err(|_| ImageError::Snapshot("lock poisoned".into()))
    }

    fn save(&self, index: &Index) -> Result<(), ImageError> {
        index.save(&self.root.join("index.json"))
    }

    fn dir(&self, id: u64) -> PathBuf {
        self.root.join("snapshots").join(id.to_string())
    }

    /// Whether a chain ID is committed.
    pub fn is_committed(&self, chain_id: &str) -> bool {
        self.lock()
            .is_ok_and(|i| i.committed.contains_key(chain_id))
    }

    /// The committed chain IDs.
    pub fn committed(&self) -> Result<Vec<String>, ImageError> {
        Ok(self.lock()?.committed.keys().cloned().collect())
    }

    /// The keys of active snapshots.
    pub fn active(&self) -> Result<Vec<String>, ImageError> {
        Ok(self.lock()?.active.keys().cloned().collect())
    }

    fn lowers(&self, index: &Index, parent: Option<&str>) -> Result<Vec<PathBuf>, ImageError> {
        match parent {
            None => Ok(vec![self.root.join("empty")]),
            Some(p) => Ok(index
                .chain(p)?
                .into_iter()
                .map(|id| self.dir(id).join("fs"))
                .collect()),
        }
    }

    /// Creates an active snapshot `key` over the committed chain `parent_chain_id` (empty for
    /// none) and returns its overlay directories. It survives a host crash once this returns.
    pub fn prepare(&self, key: &str, parent_chain_id: &str) -> Result<Mounts, ImageError> {
        self.prepare_with(key, parent_chain_id, Durability::Synced)
    }

    /// [`Self::prepare`]; `Volatile` for a layer thrown away after one use (`run --rm`): its
    /// record is not synced (after a host crash it may be gone, the directory with it).
    pub fn prepare_with(
        &self,
        key: &str,
        parent_chain_id: &str,
        durability: Durability,
    ) -> Result<Mounts, ImageError> {
        if key.is_empty() {
            return Err(ImageError::Snapshot("empty key".into()));
        }
        let parent = (!parent_chain_id.is_empty()).then(|| parent_chain_id.to_string());
        let _op = self.shared_op()?;
        let mut index = self.lock()?;
        if index.active.contains_key(key) {
            return Err(ImageError::Snapshot(format!("{key} already exists")));
        }
        let lowers = self.lowers(&index, parent.as_deref())?;
        let id = index.allocate();
        let dir = self.dir(id);
        let record = active::Record {
            key: key.to_string(),
            parent: parent.clone(),
        };
        let made = ["fs", "work"]
            .iter()
            .try_for_each(|sub| fs::create_dir_all(dir.join(sub)))
            .and_then(|()| active::write(&dir, &record, durability));
        if let Err(e) = made {
            let _ = fs::remove_dir_all(&dir);
            return Err(ImageError::io_path("create", &dir, e));
        }
        index.active.insert(key.to_string(), Active { id, parent });
        Ok(Mounts {
            lowers,
            upper: dir.join("fs"),
            work: dir.join("work"),
        })
    }

    /// The overlay directories of active snapshot `key`.
    pub fn mounts(&self, key: &str) -> Result<Mounts, ImageError> {
        let index = self.lock()?;
        let active = index
            .active
            .get(key)
            .ok_or_else(|| ImageError::Snapshot(format!("{key} not found")))?;
        let dir = self.dir(active.id);
        Ok(Mounts {
            lowers: self.lowers(&index, active.parent.as_deref())?,
            upper: dir.join("fs"),
            work: dir.join("work"),
        })
    }

    /// Mounts active snapshot `key` at `target` (an existing directory).
    pub fn mount(&self, key: &str, target: &Path) -> Result<(), ImageError> {
        self.mount_with(key, target, Durability::Synced)
    }

    /// [`Self::mount`], choosing whether the writable layer must survive a host crash.
    pub fn mount_with(
        &self,
        key: &str,
        target: &Path,
        durability: Durability,
    ) -> Result<(), ImageError> {
        let m = self.mounts(key)?;
        berth_runtime::rootfs::overlay::mount_with(
            &m.lowers, &m.upper, &m.work, target, durability,
        )?;
        Ok(())
    }

    /// Mounts the committed chain `chain_id` read-only at `target` (to look into an image).
    pub fn mount_view(&self, chain_id: &str, target: &Path) -> Result<(), ImageError> {
        let lowers = {
            let index = self.lock()?;
            self.lowers(&index, Some(chain_id))?
        };
        berth_runtime::rootfs::overlay::mount(&lowers, Path::new(""), Path::new(""), target)?;
        Ok(())
    }

    /// Unmounts `target` (lazily if busy; not mounted is fine).
    pub fn unmount(&self, target: &Path) -> Result<(), ImageError> {
        berth_runtime::rootfs::overlay::unmount(target)?;
        Ok(())
    }

    /// Removes active snapshot `key` and its upper dir; refused while it is mounted.
    pub fn remove(&self, key: &str) -> Result<(), ImageError> {
        let mut index = self.lock()?;
        let id = index
            .active
            .get(key)
            .ok_or_else(|| ImageError::Snapshot(format!("{key} not found")))?
            .id;
        if is_mounted_upper(&self.dir(id).join("fs")) {
            return Err(ImageError::Snapshot(format!("{key} is mounted")));
        }
        let active = index
            .active
            .remove(key)
            .ok_or_else(|| ImageError::Snapshot(format!("{key} not found")))?;
        let dir = self.dir(active.id);
        active::remove_dir(&dir).map_err(|e| ImageError::io_path("remove", &dir, e))
    }

    /// What `gc` would remove, removing nothing: (active keys, committed chain IDs).
    pub fn unreferenced(
        &self,
        referenced_chain_ids: &[String],
        referenced_keys: &[String],
    ) -> Result<(Vec<String>, Vec<String>), ImageError> {
        let index = self.lock()?;
        Ok(Self::unreferenced_in(
            &index,
            referenced_chain_ids,
            referenced_keys,
            |id| self.dir(id),
        ))
    }

    fn unreferenced_in(
        index: &Index,
        referenced_chain_ids: &[String],
        referenced_keys: &[String],
        dir: impl Fn(u64) -> PathBuf,
    ) -> (Vec<String>, Vec<String>) {
        // Mounted snapshots are kept even when not referenced.
        let drop_keys: Vec<String> = index
            .active
            .iter()
            .filter(|(k, a)| {
                !referenced_keys.contains(k) && !is_mounted_upper(&dir(a.id).join("fs"))
            })
            .map(|(k, _)| k.clone())
            .collect();
        let mut keep = std::collections::HashSet::new();
        let roots = referenced_chain_ids.iter().cloned().chain(
            index
                .active
                .iter()
                .filter(|(k, _)| !drop_keys.contains(k))
                .filter_map(|(_, a)| a.parent.clone()),
        );
        for root in roots {
            let mut cur = Some(root);
            while let Some(c) = cur {
                if !keep.insert(c.clone()) {
                    break;
                }
                cur = index.committed.get(&c).and_then(|s| s.parent.clone());
            }
        }
        let drop_chains = index
            .committed
            .keys()
            .filter(|c| !keep.contains(*c))
            .cloned()
            .collect();
        (drop_keys, drop_chains)
    }

    /// Removes active snapshots whose key is not in `referenced_keys` and committed snapshots
    /// that neither a referenced chain nor a kept active snapshot needs. Returns the removed
    /// chain IDs and keys.
    pub fn gc(
        &self,
        referenced_chain_ids: &[String],
        referenced_keys: &[String],
    ) -> Result<Vec<String>, ImageError> {
        let _op = self
            .ops
            .write()
            .map_err(|_| ImageError::Snapshot("lock poisoned".into()))?;
        let mut index = self.lock()?;
        let (drop_keys, drop_chains) =
            Self::unreferenced_in(&index, referenced_chain_ids, referenced_keys, |id| {
                self.dir(id)
            });
        let mut removed = Vec::new();
        let mut dirs = Vec::new();
        for k in drop_keys {
            if let Some(a) = index.active.remove(&k) {
                let dir = self.dir(a.id);
                active::remove_dir(&dir).map_err(|e| ImageError::io_path("remove", &dir, e))?;
                removed.push(k);
            }
        }
        for c in drop_chains {
            if let Some(s) = index.committed.remove(&c) {
                dirs.push(self.dir(s.id));
                removed.push(c);
            }
        }
        self.save(&index)?;
        drop(index);
        for d in dirs {
            fs::remove_dir_all(&d).map_err(|e| ImageError::io_path("remove", &d, e))?;
        }
        Ok(removed)
    }
}

/// Whether an overlay with this upper dir is mounted (in this mount namespace).
fn is_mounted_upper(upper: &Path) -> bool {
    let Ok(info) = fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    // mountinfo escapes space, tab, newline and backslash as octal; overlay also escapes
    // commas in its options.
    let mut want = String::from("upperdir=");
    for c in upper.to_string_lossy().chars() {
        match c {
            ' ' => want.push_str("\\040"),
            '\t' => want.push_str("\\011"),
            '\n' => want.push_str("\\012"),
            '\\' => want.push_str("\\134"),
            ',' => want.push_str("\\,"),
            c => want.push(c),
        }
    }
    info.lines().any(|line| {
        line.split(" - ").nth(1).is_some_and(|rest| {
            rest.starts_with("overlay ")
                && rest
                    .split(' ')
                    .nth(2)
                    .is_some_and(|opts| format!(",{opts},").contains(&format!(",{want},")))
        })
    })
}
