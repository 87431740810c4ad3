//! The state document `state` and `list --format json` print, shaped like runc's.

use std::collections::HashMap;
use std::path::PathBuf;

use berth_runtime::Container;
use serde::Serialize;

/// What `berth-oci state` prints (runc's field names and order).
#[derive(Debug, Serialize)]
pub struct StateDoc {
    #[serde(rename = "ociVersion")]
    pub oci_version: String,
    pub id: String,
    pub pid: i32,
    pub status: String,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    pub created: String,
    pub owner: String,
    #[serde(skip_serializing_if = "HashMap::is_empty")]
    pub annotations: HashMap<String, String>,
}

impl StateDoc {
    pub fn of(container: &Container) -> Self {
        let oci = container.oci_state();
        StateDoc {
            oci_version: oci.oci_version,
            id: oci.id,
            pid: oci.pid,
            status: oci.status.to_string(),
            bundle: oci.bundle,
            rootfs: oci.rootfs,
            created: oci.created,
            owner: String::new(),
            annotations: oci.annotations,
        }
    }
}
