//! Exporting images as an OCI image layout tar: `oci-layout`, `index.json` (one entry per
//! image with `io.containerd.image.name` and `org.opencontainers.image.ref.name`) and
//! `blobs/sha256/*` copied byte for byte, so digests survive export and import.

use std::collections::BTreeSet;
use std::io::Write;

use serde_json::json;

use super::import::{ANNOTATION_IMAGE_NAME, ANNOTATION_REF_NAME};
use crate::content::{ContentStore, MAX_JSON_SIZE};
use crate::manifest::{self, DOCKER_LIST, DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST};
use crate::{normalize, Digest, ImageError};

fn media_type(data: &[u8]) -> &'static str {
    let declared = serde_json::from_slice::<serde_json::Value>(data)
        .ok()
        .and_then(|v| {
            v.get("mediaType")
                .and_then(|m| m.as_str())
                .map(str::to_string)
        });
    match declared.as_deref() {
        Some(DOCKER_MANIFEST) => DOCKER_MANIFEST,
        Some(DOCKER_LIST) => DOCKER_LIST,
        _ if manifest::is_index(data) => OCI_INDEX,
        _ => OCI_MANIFEST,
    }
}

/// Writes `images` (name, manifest or index digest) with every blob they need as an OCI
/// layout tar to `writer`.
pub fn export_archive(
    store: &ContentStore,
    images: &[(String, Digest)],
    writer: impl Write,
) -> Result<(), ImageError> {
    let mut blobs = BTreeSet::new();
    let mut index_entries = Vec::new();
    for (name, digest) in images {
        let reference = normalize(name)?;
        super::import::check_image(store, digest)?;
        let data = store.read_blob(digest, MAX_JSON_SIZE)?;
        let mut annotations = serde_json::Map::new();
        annotations.insert(ANNOTATION_IMAGE_NAME.into(), json!(reference.to_string()));
        if let Some(tag) = &reference.tag {
            annotations.insert(ANNOTATION_REF_NAME.into(), json!(tag));
        }
        index_entries.push(json!({
            "mediaType": media_type(&data),
            "digest": digest.as_str(),
            "size": data.len(),
            "annotations": annotations,
        }));
        // The image and everything present below it (an index may be partial).
        let mut stack = vec![digest.clone()];
        while let Some(d) = stack.pop() {
            if !store.exists(&d) || !blobs.insert(d.clone()) {
                continue;
            }
            stack.extend(manifest::children(store, &d)?);
        }
    }
    let index = json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": index_entries,
    });
    let index =
        serde_json::to_vec(&index).map_err(|e| ImageError::invalid("index.json", e.to_string()))?;
    let io = |e: std::io::Error| ImageError::io("write archive", e);
    let mut b = tar::Builder::new(writer);
    let add = |b: &mut tar::Builder<_>, path: &str, size: u64, data: &mut dyn std::io::Read| {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(0o644);
        h.set_size(size);
        h.set_mtime(0);
        b.append_data(&mut h, path, data)
    };
    for dir in ["blobs/", "blobs/sha256/"] {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(0o755);
        h.set_size(0);
        b.append_data(&mut h, dir, std::io::empty()).map_err(io)?;
    }
    let layout = br#"{"imageLayoutVersion":"1.0.0"}"#;
    add(&mut b, "oci-layout", layout.len() as u64, &mut &layout[..]).map_err(io)?;
    add(&mut b, "index.json", index.len() as u64, &mut &index[..]).map_err(io)?;
    for d in &blobs {
        let mut f = store.open_blob(d)?;
        let size = f.metadata().map_err(io)?.len();
        add(&mut b, &format!("blobs/sha256/{}", d.hex()), size, &mut f).map_err(io)?;
    }
    b.into_inner().map_err(io)?.flush().map_err(io)
}
