//! `docker save` archives: `manifest.json` lists each image's config file, tags and layer
//! files; they are converted to OCI manifests in the content store (layer blobs as they are,
//! gzip or plain tar).

use std::io::Read;
use std::path::Path;

use oci_spec::image::ImageConfiguration;
use serde::Deserialize;
use serde_json::json;

use super::import::{Contents, ImportedImage};
use crate::content::{BlobInfo, ContentStore, MAX_JSON_SIZE};
use crate::manifest::{
    MAX_LAYERS, OCI_CONFIG, OCI_LAYER_GZIP, OCI_LAYER_TAR, OCI_LAYER_ZSTD, OCI_MANIFEST,
};
use crate::unpack::safe_fs::clean_path;
use crate::{normalize, Digest, ImageError};

#[derive(Deserialize)]
struct Entry {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags", default)]
    repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers")]
    layers: Vec<String>,
}

fn bad(reason: impl Into<String>) -> ImageError {
    ImageError::invalid("docker archive", reason)
}

fn lookup(
    store: &ContentStore,
    contents: &Contents,
    created: &mut Vec<Digest>,
    raw: &str,
) -> Result<BlobInfo, ImageError> {
    let path = clean_path(raw.as_bytes())?.ok_or_else(|| bad("empty path in manifest.json"))?;
    if let Some(data) = contents.json.get(&path) {
        let existed = store.exists(&Digest::of(data));
        let info = store.put(data)?;
        if !existed {
            created.push(info.digest.clone());
        }
        return Ok(info);
    }
    contents.file(Path::new(&path)).cloned().ok_or_else(|| {
        bad(format!(
            "manifest.json names {raw}, which is not in the archive"
        ))
    })
}

fn layer_media_type(store: &ContentStore, digest: &Digest) -> Result<&'static str, ImageError> {
    let mut head = [0u8; 4];
    let mut f = store.open_blob(digest)?;
    let n = f
        .read(&mut head)
        .map_err(|e| ImageError::io("read layer", e))?;
    Ok(if head[..n].starts_with(&[0x1f, 0x8b]) {
        OCI_LAYER_GZIP
    } else if head[..n] == [0x28, 0xb5, 0x2f, 0xfd] {
        OCI_LAYER_ZSTD
    } else {
        OCI_LAYER_TAR
    })
}

pub(crate) fn resolve_docker(
    store: &ContentStore,
    data: &[u8],
    contents: &Contents,
    created: &mut Vec<Digest>,
) -> Result<Vec<ImportedImage>, ImageError> {
    let entries: Vec<Entry> =
        serde_json::from_slice(data).map_err(|e| bad(format!("manifest.json: {e}")))?;
    if entries.is_empty() || entries.len() > 1024 {
        return Err(bad("manifest.json lists no images or too many"));
    }
    let mut out = Vec::new();
    for entry in entries {
        if entry.layers.len() > MAX_LAYERS {
            return Err(bad(format!("more than {MAX_LAYERS} layers")));
        }
        let config = lookup(store, contents, created, &entry.config)?;
        let config_data = store.read_blob(&config.digest, MAX_JSON_SIZE)?;
        let parsed: ImageConfiguration = serde_json::from_slice(&config_data)
            .map_err(|e| bad(format!("config {}: {e}", entry.config)))?;
        if parsed.rootfs().diff_ids().len() != entry.layers.len() {
            return Err(bad(format!(
                "config has {} diff IDs for {} layers",
                parsed.rootfs().diff_ids().len(),
                entry.layers.len()
            )));
        }
        let mut layers = Vec::new();
        for l in &entry.layers {
            let info = lookup(store, contents, created, l)?;
            layers.push(json!({
                "mediaType": layer_media_type(store, &info.digest)?,
                "digest": info.digest.as_str(),
                "size": info.size,
            }));
        }
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": OCI_CONFIG,
                "digest": config.digest.as_str(),
                "size": config.size,
            },
            "layers": layers,
        });
        let bytes = serde_json::to_vec(&manifest).map_err(|e| bad(e.to_string()))?;
        let existed = store.exists(&Digest::of(&bytes));
        let manifest = store.put(&bytes)?;
        if !existed {
            created.push(manifest.digest.clone());
        }
        let tags = entry.repo_tags.unwrap_or_default();
        if tags.is_empty() {
            out.push(ImportedImage {
                name: None,
                manifest: manifest.digest.clone(),
                config: config.digest.clone(),
            });
        }
        for tag in tags {
            out.push(ImportedImage {
                name: Some(normalize(&tag)?.to_string()),
                manifest: manifest.digest.clone(),
                config: config.digest.clone(),
            });
        }
    }
    Ok(out)
}
