//! Start-up sweeps of what `run --rm` containers leave after a crash: their records' creation
//! and removal are not flushed (see `store`), nor are their writable snapshots' records (see
//! `berth_images::Snapshotter::prepare_with`). A record of an ephemeral container without a
//! task bundle is removed, with its snapshot and log (before task recovery, which handles the
//! ones that still have a bundle); a writable snapshot no record names is removed.

use std::sync::Arc;

use crate::daemon::Daemon;

pub async fn ephemeral(d: &Arc<Daemon>) {
    let namespaces = match d.store.namespaces() {
        Ok(n) => n,
        Err(e) => {
            tracing::warn!("sweeping ephemeral containers: {e}");
            return;
        }
    };
    for ns in namespaces {
        let containers = match d.store.containers(&ns.name) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(ns = ns.name, "sweeping ephemeral containers: {e}");
                continue;
            }
        };
        for c in containers {
            if !crate::store::is_ephemeral(&c) || d.bundles.path(&ns.name, &c.id).exists() {
                continue;
            }
            tracing::info!(
                ns = ns.name,
                id = c.id,
                "removing a leftover --rm container"
            );
            if let Err(e) = crate::services::containers::remove(d, &ns.name, &c, true).await {
                tracing::warn!(
                    ns = ns.name,
                    id = c.id,
                    "removing a leftover --rm container: {e}"
                );
            }
        }
    }
}

/// Start-up sweep of writable snapshots no container record names: the layer of a `run --rm`
/// container whose unflushed record a host crash lost. Mounted ones are kept (a live
/// container's, whatever its record says).
pub fn snapshots(d: &Daemon) {
    let mut keys = Vec::new();
    let namespaces = match d.store.namespaces() {
        Ok(n) => n,
        Err(e) => {
            tracing::warn!("sweeping snapshots: {e}");
            return;
        }
    };
    for ns in namespaces {
        match d.store.containers(&ns.name) {
            Ok(list) => keys.extend(list.into_iter().map(|c| c.snapshot_key)),
            // Without every record, any snapshot may be someone's: keep them all.
            Err(e) => {
                tracing::warn!(ns = ns.name, "sweeping snapshots: {e}");
                return;
            }
        }
    }
    let unreferenced = match d.images.snapshots.unreferenced(&[], &keys) {
        Ok((keys, _chains)) => keys,
        Err(e) => {
            tracing::warn!("sweeping snapshots: {e}");
            return;
        }
    };
    for key in unreferenced {
        tracing::info!(key, "removing a writable snapshot no container uses");
        if let Err(e) = d.images.snapshots.remove(&key) {
            tracing::warn!(key, "removing a writable snapshot: {e}");
        }
    }
}
