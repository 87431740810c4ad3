//! Start-up sweep of ephemeral container records (`run --rm`): their creation and removal are
//! not flushed (see `store`), so a crash can leave a record whose task is long gone. A record
//! of an ephemeral container without a task bundle is removed, with its snapshot and log.
//! Runs before task recovery, which handles the ones that still have a bundle. (A writable
//! snapshot whose unflushed record was lost is an orphan: `orphans::snapshots` removes it.)

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
