//! Mounts under berthd's root and state dirs that nothing owns: a bundle's rootfs overlay whose
//! bundle or record is gone, a netns pin of an unknown container, anything else there that no
//! container's id (or CNI key) names.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use berth_proto::v1::Orphan;
use nix::mount::{umount2, MntFlags};

use super::{orphan, settle, Owners};
use crate::daemon::Daemon;

pub async fn pass(d: &Arc<Daemon>, dry_run: bool) -> Vec<Orphan> {
    let roots: Vec<PathBuf> = [&d.cfg.root, &d.cfg.state]
        .into_iter()
        .map(|p| p.canonicalize().unwrap_or_else(|_| p.clone()))
        .collect();
    let table = berth_runtime::mountinfo::read_self().unwrap_or_default();
    let points: BTreeSet<PathBuf> = table
        .into_iter()
        .map(|m| m.mount_point)
        .filter(|p| roots.iter().any(|r| p.starts_with(r) && p != r))
        .collect();
    let owners = Owners::load(d);
    let state = &roots[1];
    let mut out = Vec::new();
    for point in points {
        if owned(d, &owners, state, &roots, &point) {
            continue;
        }
        let (ns, id) = owner_guess(state, &point);
        let mut o = orphan(
            "mount",
            &ns,
            &id,
            &point.display().to_string(),
            "nothing owns it",
        );
        if !dry_run {
            settle(&mut o, unmount_all(&point));
        }
        out.push(o);
    }
    out
}

fn owned(d: &Daemon, owners: &Owners, state: &Path, roots: &[PathBuf], point: &Path) -> bool {
    if let Ok(rel) = point.strip_prefix(state.join("tasks")) {
        let mut c = rel.components().map(|c| c.as_os_str().to_string_lossy());
        let (Some(ns), Some(id)) = (c.next(), c.next()) else {
            return false;
        };
        return !id.starts_with('.') && owners.has(&ns, &id) && d.bundles.path(&ns, &id).is_dir();
    }
    if let Ok(rel) = point.strip_prefix(state.join("netns")) {
        return owners.owns_key(&rel.to_string_lossy());
    }
    let rel = roots
        .iter()
        .find_map(|r| point.strip_prefix(r).ok())
        .unwrap_or(point);
    rel.components().any(|c| {
        let c = c.as_os_str().to_string_lossy();
        owners.has_id(&c) || owners.owns_key(&c)
    })
}

fn owner_guess(state: &Path, point: &Path) -> (String, String) {
    if let Ok(rel) = point.strip_prefix(state.join("tasks")) {
        let mut c = rel
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned());
        return (c.next().unwrap_or_default(), c.next().unwrap_or_default());
    }
    if let Ok(rel) = point.strip_prefix(state.join("netns")) {
        return super::guess_key(&rel.to_string_lossy());
    }
    (String::new(), String::new())
}

/// Unmounts (lazily) every mount stacked at `point`.
fn unmount_all(point: &Path) -> Result<(), String> {
    for _ in 0..16 {
        match umount2(point, MntFlags::MNT_DETACH) {
            Ok(()) => continue,
            Err(nix::Error::EINVAL) | Err(nix::Error::ENOENT) => return Ok(()),
            Err(e) => return Err(format!("unmounting {}: {e}", point.display())),
        }
    }
    Ok(())
}
