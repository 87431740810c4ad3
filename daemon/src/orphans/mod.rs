//! Orphans: what a crash (of berthd, a shim, or the host's patience) left behind that nothing
//! owns any more, found and removed at start and on demand (`Maintenance.Doctor`,
//! `berthctl doctor [--dry-run]`).
//!
//! Ownership is decided from the container records of EVERY namespace (k8s.io's pod sandboxes
//! are ordinary records) and the bundles in the state dir:
//!
//! | kind     | where                                   | owned when                            |
//! |----------|-----------------------------------------|---------------------------------------|
//! | shim     | `berth-shim` processes of our socket dir| record + bundle whose bootstrap names it |
//! | bundle   | `<state>/tasks/<ns>/<id>`               | a record (hidden `.<id>.deleting`: never) |
//! | cgroup   | `<cgroup_root>/<ns>/<id>`, every hierarchy | record + bundle                    |
//! | mount    | mount points under `<root>` or `<state>`| bundle's: record + bundle; others: a path component is a record's id or CNI key |
//! | network  | CNI attachments, netns pins, IPAM files | a record (key `<ns>.<id>`)            |
//! | snapshot | active and committed snapshots          | a record's snapshot key, an image's chain |
//!
//! Each pass lists its resources first and reads the owners after, in the order the daemon
//! creates things (record → bundle → mount, cgroup, network → shim), so a resource that is being
//! created is never taken for an orphan; removals take the task's lock and check again. Live
//! shims this berthd cannot speak to are reported (`incompatible-shim`) and never touched.

mod bundles;
mod cgroups;
mod mounts;
mod network;
mod shims;
mod snapshots;

use std::collections::HashSet;
use std::sync::Arc;

use berth_proto::v1::Orphan;

use crate::daemon::Daemon;

/// Finds orphans of every kind; removes them unless `dry_run`.
pub async fn run(d: &Arc<Daemon>, dry_run: bool) -> Vec<Orphan> {
    // Every pass takes what no record names for an orphan: with records it cannot read it
    // would remove live containers' things. Nothing is done then.
    if let Err(e) = store_readable(d) {
        tracing::warn!("orphan pass skipped: {e}");
        let mut o = orphan(
            "store",
            "",
            "",
            "",
            "the container records cannot all be read",
        );
        o.error = format!("nothing checked or removed: {e}; see berthd's log");
        return vec![o];
    }
    let mut out = Vec::new();
    out.extend(shims::pass(d, dry_run).await);
    out.extend(bundles::pass(d, dry_run).await);
    out.extend(cgroups::pass(d, dry_run).await);
    out.extend(mounts::pass(d, dry_run).await);
    out.extend(network::pass(d, dry_run).await);
    out.extend(snapshots::pass(d, dry_run).await);
    for ((ns, id), why) in d.shims.all_incompatible() {
        let mut o = orphan("incompatible-shim", &ns, &id, "", &why);
        o.error = "left running: this berthd cannot speak its protocol".into();
        out.push(o);
    }
    for o in &out {
        if o.kind == "incompatible-shim" {
            continue;
        }
        tracing::info!(
            kind = o.kind,
            ns = o.namespace,
            id = o.id,
            path = o.path,
            detail = o.detail,
            removed = o.removed,
            error = o.error,
            "orphan"
        );
    }
    out
}

/// The start-up pass: in the background once recovery is done, so the API is not delayed.
pub fn startup(d: &Arc<Daemon>) {
    let d = d.clone();
    tokio::spawn(async move {
        let found = run(&d, false).await;
        let n = found
            .iter()
            .filter(|o| o.kind != "incompatible-shim")
            .count();
        if n > 0 {
            tracing::warn!("start-up cleanup: {n} orphan(s) found");
        }
    });
}

pub(crate) fn orphan(kind: &str, ns: &str, id: &str, path: &str, detail: &str) -> Orphan {
    Orphan {
        kind: kind.into(),
        namespace: ns.into(),
        id: id.into(),
        path: path.into(),
        detail: detail.into(),
        ..Default::default()
    }
}

/// Marks an orphan removed, or why not.
pub(crate) fn settle(o: &mut Orphan, r: Result<(), String>) {
    match r {
        Ok(()) => o.removed = true,
        Err(e) => o.error = e,
    }
}

/// Whether every namespace's container records decode.
fn store_readable(d: &Daemon) -> Result<(), crate::store::StoreError> {
    for ns in d.store.namespaces()? {
        d.store.containers(&ns.name)?;
    }
    Ok(())
}

/// The container records of every namespace, read at one moment.
pub(crate) struct Owners {
    records: HashSet<(String, String)>,
    ids: HashSet<String>,
}

impl Owners {
    pub fn load(d: &Daemon) -> Owners {
        let mut records = HashSet::new();
        let mut ids = HashSet::new();
        for ns in d.store.namespaces().unwrap_or_default() {
            for c in d.store.containers(&ns.name).unwrap_or_default() {
                ids.insert(c.id.clone());
                records.insert((ns.name.clone(), c.id));
            }
        }
        Owners { records, ids }
    }

    pub fn has(&self, ns: &str, id: &str) -> bool {
        self.records.contains(&(ns.to_string(), id.to_string()))
    }

    /// Whether any namespace has a container with this id.
    pub fn has_id(&self, id: &str) -> bool {
        self.ids.contains(id)
    }

    /// Whether a record owns the CNI key `<ns>.<id>` (namespaces may hold dots: `k8s.io`).
    pub fn owns_key(&self, key: &str) -> bool {
        split_key(key, |ns, id| self.has(ns, id)).is_some()
    }
}

/// The (namespace, id) of a key `<ns>.<id>` for which `known` holds, trying every dot.
pub fn split_key(key: &str, known: impl Fn(&str, &str) -> bool) -> Option<(String, String)> {
    key.match_indices('.')
        .map(|(i, _)| (&key[..i], &key[i + 1..]))
        .find(|(ns, id)| known(ns, id))
        .map(|(ns, id)| (ns.to_string(), id.to_string()))
}

/// A best guess at the (namespace, id) of a key nothing owns, for the report.
pub fn guess_key(key: &str) -> (String, String) {
    if let Some(id) = key.strip_prefix("k8s.io.") {
        return ("k8s.io".into(), id.into());
    }
    match key.split_once('.') {
        Some((ns, id)) => (ns.into(), id.into()),
        None => (String::new(), key.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_split_at_the_dot_a_record_knows() {
        let known = |ns: &str, id: &str| (ns, id) == ("k8s.io", "pod.1");
        assert_eq!(
            split_key("k8s.io.pod.1", known),
            Some(("k8s.io".into(), "pod.1".into()))
        );
        assert_eq!(split_key("k8s.io.pod.2", known), None);
        assert_eq!(guess_key("k8s.io.x"), ("k8s.io".into(), "x".into()));
        assert_eq!(guess_key("default.a.b"), ("default".into(), "a.b".into()));
    }
}
