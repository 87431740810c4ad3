//! Bundles without a container record, and hidden bundles a crash left mid-delete.

use std::sync::Arc;

use berth_proto::v1::{Container, Orphan};

use super::{orphan, settle};
use crate::daemon::Daemon;

pub async fn pass(d: &Arc<Daemon>, dry_run: bool) -> Vec<Orphan> {
    // Bundles first, records after: a bundle is made after its record and removed before it.
    let mut found = Vec::new();
    for ns in std::fs::read_dir(d.cfg.tasks_dir())
        .into_iter()
        .flatten()
        .flatten()
    {
        let ns_name = ns.file_name().to_string_lossy().into_owned();
        for e in std::fs::read_dir(ns.path()).into_iter().flatten().flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                found.push((
                    ns_name.clone(),
                    e.file_name().to_string_lossy().into_owned(),
                ));
            }
        }
    }
    let mut out = Vec::new();
    for (ns, name) in found {
        let path = d.cfg.tasks_dir().join(&ns).join(&name);
        if name.starts_with('.') {
            // `.<id>.<stamp>.deleting` (`.<id>.deleting` from older versions).
            let rest = name.trim_start_matches('.').trim_end_matches(".deleting");
            let id = match rest.rsplit_once('.') {
                Some((id, stamp)) if stamp.bytes().all(|b| b.is_ascii_digit()) => id,
                _ => rest,
            };
            let mut o = orphan(
                "bundle",
                &ns,
                id,
                &path.display().to_string(),
                "a delete interrupted",
            );
            if !dry_run {
                let r = crate::bundle::remove_hidden(&path).map_err(|e| e.to_string());
                settle(&mut o, if path.exists() { r } else { Ok(()) });
            }
            out.push(o);
            continue;
        }
        if d.store.container(&ns, &name).ok().flatten().is_some() {
            continue;
        }
        let mut o = orphan(
            "bundle",
            &ns,
            &name,
            &path.display().to_string(),
            "no container record",
        );
        if !dry_run {
            // Its shim (if alive) is stopped, its processes, cgroup, network and rootfs mount
            // go with it; a shim this berthd cannot speak to is refused, and kept.
            let stub = Container {
                id: name.clone(),
                ..Default::default()
            };
            let r = crate::tasks::remove_task(d, &ns, &stub, true)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string());
            settle(&mut o, r);
        }
        out.push(o);
    }
    out
}
