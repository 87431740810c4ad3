//! The snapshotter's metadata: one small JSON file replaced atomically (write, fsync, rename,
//! fsync the directory), so a crash leaves either the old or the new index. It holds the
//! committed snapshots and the id counter; active snapshots each have their own record (see
//! `active`) and are only kept here in memory (older versions wrote them here: they are
//! still read, and moved to their own records when the snapshotter opens).

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::ImageError;

/// A committed (read-only) snapshot: one layer on top of its parent chain.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Committed {
    pub id: u64,
    pub parent: Option<String>,
}

/// An active (writable) snapshot: upper and work dirs over a committed chain.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Active {
    pub id: u64,
    pub parent: Option<String>,
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub(crate) struct Index {
    pub next_id: u64,
    /// By chain ID.
    pub committed: BTreeMap<String, Committed>,
    /// By key. In memory only; read from an index of an older version.
    #[serde(default, skip_serializing)]
    pub active: BTreeMap<String, Active>,
}

impl Index {
    pub(crate) fn load(path: &Path) -> Result<Index, ImageError> {
        match fs::read(path) {
            Ok(data) => serde_json::from_slice(&data).map_err(|e| {
                ImageError::invalid(format!("snapshot index {}", path.display()), e.to_string())
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Index {
                next_id: 1,
                ..Index::default()
            }),
            Err(e) => Err(ImageError::io_path("read", path, e)),
        }
    }

    pub(crate) fn save(&self, path: &Path) -> Result<(), ImageError> {
        let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
        let data = serde_json::to_vec_pretty(self)
            .map_err(|e| ImageError::invalid("snapshot index", e.to_string()))?;
        let write = || -> std::io::Result<()> {
            let mut f = fs::File::create(&tmp)?;
            f.write_all(&data)?;
            f.sync_all()?;
            fs::rename(&tmp, path)?;
            if let Some(dir) = path.parent() {
                fs::File::open(dir)?.sync_all()?;
            }
            Ok(())
        };
        write().map_err(|e| {
            let _ = fs::remove_file(&tmp);
            ImageError::io_path("write", path, e)
        })
    }

    pub(crate) fn allocate(&mut self) -> u64 {
        let id = self.next_id.max(1);
        self.next_id = id + 1;
        id
    }

    /// The chain from `chain_id` down to the base, top-most first.
    pub(crate) fn chain(&self, chain_id: &str) -> Result<Vec<u64>, ImageError> {
        let mut out = Vec::new();
        let mut cur = Some(chain_id.to_string());
        while let Some(c) = cur {
            let snap = self
                .committed
                .get(&c)
                .ok_or_else(|| ImageError::Snapshot(format!("{c} is not committed")))?;
            out.push(snap.id);
            if out.len() > crate::manifest::MAX_LAYERS {
                return Err(ImageError::Snapshot(format!("{chain_id}: chain too long")));
            }
            cur = snap.parent.clone();
        }
        Ok(out)
    }
}
