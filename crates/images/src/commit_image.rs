//! A new image from a base image and a committed layer: the base config with the layer's diff
//! ID and a history entry appended (and optional config changes), and a manifest with the
//! layer appended. Unknown fields of the base documents are kept.

use std::collections::HashMap;

use serde_json::{json, Value};

use crate::content::{ContentStore, MAX_JSON_SIZE};
use crate::manifest::{self, Platform, DOCKER_MANIFEST, MAX_LAYERS};
use crate::{CommittedLayer, Digest, ImageError};

/// Config changes for [`commit_image`]; `None` keeps the base image's value.
#[derive(Debug, Clone, Default)]
pub struct ImageChanges {
    pub cmd: Option<Vec<String>>,
    pub entrypoint: Option<Vec<String>>,
    pub env: Option<Vec<String>>,
    pub working_dir: Option<String>,
    pub user: Option<String>,
    pub labels: Option<HashMap<String, String>>,
    /// The history entry's comment.
    pub comment: Option<String>,
    /// The history entry's and the image's author.
    pub author: Option<String>,
}

fn bad(reason: impl Into<String>) -> ImageError {
    ImageError::invalid("commit", reason)
}

/// Creates the new config and manifest in `store`; returns the new manifest's digest.
pub fn commit_image(
    store: &ContentStore,
    base_manifest: &Digest,
    layer: &CommittedLayer,
    changes: Option<&ImageChanges>,
) -> Result<Digest, ImageError> {
    let (digest, _) = manifest::resolve_manifest(store, base_manifest, &Platform::default())?;
    let mut m: Value = serde_json::from_slice(&store.read_blob(&digest, MAX_JSON_SIZE)?)
        .map_err(|e| bad(e.to_string()))?;
    let config_digest = m
        .pointer("/config/digest")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("base manifest has no config"))
        .and_then(Digest::parse)?;
    let mut config: Value =
        serde_json::from_slice(&store.read_blob(&config_digest, MAX_JSON_SIZE)?)
            .map_err(|e| bad(e.to_string()))?;
    let now = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();

    let diff_ids = config
        .pointer_mut("/rootfs/diff_ids")
        .and_then(Value::as_array_mut)
        .ok_or_else(|| bad("base config has no rootfs.diff_ids"))?;
    if diff_ids.len() >= MAX_LAYERS {
        return Err(bad(format!(
            "the image would have more than {MAX_LAYERS} layers"
        )));
    }
    diff_ids.push(json!(layer.diff_id.as_str()));
    let obj = config
        .as_object_mut()
        .ok_or_else(|| bad("base config is not an object"))?;
    obj.insert("created".into(), json!(now));
    let mut entry = json!({ "created": now, "created_by": "berth commit" });
    if let Some(c) = changes {
        if let Some(comment) = &c.comment {
            entry["comment"] = json!(comment);
        }
        if let Some(author) = &c.author {
            entry["author"] = json!(author);
            obj.insert("author".into(), json!(author));
        }
        let cfg = obj.entry("config").or_insert_with(|| json!({}));
        let set = |cfg: &mut Value, key: &str, v: Value| {
            if let Some(o) = cfg.as_object_mut() {
                o.insert(key.into(), v);
            }
        };
        if let Some(v) = &c.cmd {
            set(cfg, "Cmd", json!(v));
        }
        if let Some(v) = &c.entrypoint {
            set(cfg, "Entrypoint", json!(v));
        }
        if let Some(v) = &c.env {
            set(cfg, "Env", json!(v));
        }
        if let Some(v) = &c.working_dir {
            set(cfg, "WorkingDir", json!(v));
        }
        if let Some(v) = &c.user {
            set(cfg, "User", json!(v));
        }
        if let Some(v) = &c.labels {
            set(cfg, "Labels", json!(v));
        }
    }
    match obj.get_mut("history").and_then(Value::as_array_mut) {
        Some(h) => h.push(entry),
        None => {
            obj.insert("history".into(), json!([entry]));
        }
    }
    let config_bytes = serde_json::to_vec(&config).map_err(|e| bad(e.to_string()))?;
    let new_config = store.put(&config_bytes)?;

    let docker = m.get("mediaType").and_then(Value::as_str) == Some(DOCKER_MANIFEST);
    let layer_type = if docker {
        "application/vnd.docker.image.rootfs.diff.tar.gzip"
    } else {
        layer.media_type.as_str()
    };
    m["config"]["digest"] = json!(new_config.digest.as_str());
    m["config"]["size"] = json!(new_config.size);
    m.get_mut("layers")
        .and_then(Value::as_array_mut)
        .ok_or_else(|| bad("base manifest has no layers"))?
        .push(json!({
            "mediaType": layer_type,
            "digest": layer.blob.digest.as_str(),
            "size": layer.blob.size,
        }));
    let bytes = serde_json::to_vec(&m).map_err(|e| bad(e.to_string()))?;
    Ok(store.put(&bytes)?.digest)
}
