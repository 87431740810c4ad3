//! Snapshots no container record (any namespace) and no image record references. Holds the
//! images' gc lock, which container creation holds shared from prepare to record.

use std::sync::Arc;

use berth_images::Digest;
use berth_proto::v1::Orphan;

use super::{orphan, settle};
use crate::daemon::Daemon;

pub async fn pass(d: &Arc<Daemon>, dry_run: bool) -> Vec<Orphan> {
    let _gc = d.images.gc_lock.write().await;
    let mut keys = Vec::new();
    for ns in d.store.namespaces().unwrap_or_default() {
        for c in d.store.containers(&ns.name).unwrap_or_default() {
            if !c.snapshot_key.is_empty() {
                keys.push(c.snapshot_key);
            }
        }
    }
    let manifests: Vec<Digest> = d
        .store
        .all_images()
        .unwrap_or_default()
        .iter()
        .filter_map(|i| Digest::parse(&i.digest).ok())
        .collect();
    let d2 = d.clone();
    let r = tokio::task::spawn_blocking(move || {
        let snaps = &d2.images.snapshots;
        // An image whose chain cannot be worked out keeps every layer (error, nothing removed).
        let chains = manifests
            .iter()
            .map(|m| berth_images::image_chain_id(&d2.images.content, m))
            .collect::<Result<Vec<String>, _>>()?;
        let (active, committed) = snaps.unreferenced(&chains, &keys)?;
        let removed = if dry_run || (active.is_empty() && committed.is_empty()) {
            Ok(Vec::new())
        } else {
            snaps.gc(&chains, &keys)
        };
        Ok::<_, berth_images::ImageError>((active, committed, removed))
    })
    .await;
    let (active, committed, removed) = match r {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => {
            tracing::warn!("listing snapshots: {e}");
            return Vec::new();
        }
        Err(e) => {
            tracing::warn!("listing snapshots: {e}");
            return Vec::new();
        }
    };
    let removed_err = removed.as_ref().err().map(|e| e.to_string());
    let removed = removed.unwrap_or_default();
    let mut out = Vec::new();
    let all = active
        .iter()
        .map(|k| (k, "an active snapshot no container references"))
        .chain(
            committed
                .iter()
                .map(|c| (c, "a layer no image or container needs")),
        );
    for (key, why) in all {
        let (ns, id) = super::guess_key(key);
        let (ns, id) = if active.contains(key) {
            (ns, id)
        } else {
            (String::new(), String::new())
        };
        let mut o = orphan("snapshot", &ns, &id, key, why);
        if !dry_run {
            let r = match (&removed_err, removed.contains(key)) {
                (_, true) => Ok(()),
                (Some(e), false) => Err(e.clone()),
                (None, false) => Err("kept (mounted, or needed meanwhile)".into()),
            };
            settle(&mut o, r);
        }
        out.push(o);
    }
    out
}
