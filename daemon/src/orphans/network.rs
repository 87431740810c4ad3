//! Networks of unknown containers: CNI attachments berth-network recorded, network namespace
//! pins under `<state>/netns`, and host-local IPAM reservations under `<root>/network/ipam`.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;

use berth_proto::v1::Orphan;

use super::{guess_key, orphan, settle, Owners};
use crate::daemon::Daemon;

pub async fn pass(d: &Arc<Daemon>, dry_run: bool) -> Vec<Orphan> {
    // Resources first, records after: a container's record exists before its network does.
    let attached: BTreeSet<String> = d
        .network
        .list_attached()
        .unwrap_or_default()
        .into_iter()
        .collect();
    let pins: BTreeSet<String> = std::fs::read_dir(d.cfg.state.join("netns"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    let reservations = ipam_reservations(&d.cfg.root.join("network/ipam"));
    let owners = Owners::load(d);
    let mut out = Vec::new();
    let mut torn_down = BTreeSet::new();
    for key in attached.iter().chain(pins.iter()) {
        if owners.owns_key(key) || !torn_down.insert(key.clone()) {
            continue;
        }
        let (ns, id) = guess_key(key);
        let (kind, why) = if attached.contains(key) {
            ("network", "a CNI attachment of an unknown container")
        } else {
            ("netns", "a network namespace pin of an unknown container")
        };
        let mut o = orphan(kind, &ns, &id, key, why);
        if !dry_run {
            let r = d.network.teardown(key).await.map_err(|e| e.to_string());
            settle(&mut o, r);
        }
        out.push(o);
    }
    for (file, key) in reservations {
        if owners.owns_key(&key) || torn_down.contains(&key) || !file.exists() {
            continue;
        }
        let (ns, id) = guess_key(&key);
        let mut o = orphan(
            "ipam",
            &ns,
            &id,
            &file.display().to_string(),
            "an address reserved for an unknown container",
        );
        if !dry_run {
            settle(
                &mut o,
                std::fs::remove_file(&file).map_err(|e| e.to_string()),
            );
        }
        out.push(o);
    }
    out
}

/// host-local's reservation files: `<dir>/<network>/<ip>` holding the CNI container id (our
/// key) on the first line. (file, key)
fn ipam_reservations(dir: &std::path::Path) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    for net in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        for f in std::fs::read_dir(net.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            let name = f.file_name().to_string_lossy().into_owned();
            if name.parse::<std::net::IpAddr>().is_err() {
                continue;
            }
            if let Ok(text) = std::fs::read_to_string(f.path()) {
                if let Some(key) = text.lines().next().map(str::trim) {
                    if !key.is_empty() {
                        out.push((f.path(), key.to_string()));
                    }
                }
            }
        }
    }
    out
}
