//! An active snapshot's own record, `snapshots/<n>/active.json` (its key and parent chain):
//! creating or removing a container's writable layer rewrites no shared index, so its cost
//! does not grow with the number of containers, and a throw-away layer (`run --rm`) needs no
//! fsync at all.
//!
//! A directory whose record is missing or unreadable (a crash while it was created or
//! removed) is not a snapshot: the snapshotter removes it when opened.

use std::fs;
use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::Durability;

const FILE: &str = "active.json";

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Record {
    pub key: String,
    pub parent: Option<String>,
}

/// Writes the record into the snapshot's (new) directory `dir`. `Synced`: the record and the
/// directory itself survive a host crash once this returns.
pub(crate) fn write(dir: &Path, record: &Record, durability: Durability) -> std::io::Result<()> {
    let data = serde_json::to_vec(record).map_err(std::io::Error::other)?;
    let mut f = fs::File::create(dir.join(FILE))?;
    f.write_all(&data)?;
    if durability == Durability::Synced {
        f.sync_all()?;
        fs::File::open(dir)?.sync_all()?;
        if let Some(parent) = dir.parent() {
            fs::File::open(parent)?.sync_all()?;
        }
    }
    Ok(())
}

/// The record of snapshot directory `dir`, if it holds a valid one.
pub(crate) fn read(dir: &Path) -> Option<Record> {
    let data = fs::read(dir.join(FILE)).ok()?;
    serde_json::from_slice(&data).ok()
}

/// Removes the record first, so that whatever happens to the rest the directory is no
/// snapshot any more; the files go in the background (see `trash`).
pub(crate) fn remove_dir(dir: &Path) -> std::io::Result<()> {
    match fs::remove_file(dir.join(FILE)) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    super::trash::discard(dir)
}
