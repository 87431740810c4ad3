//! CRI images over berthd's image records. A CRI image is identified by its config digest
//! (like containerd's image ID); every record (`name → manifest digest`) whose manifest has
//! that config is one of its names. Tagged names are its repo tags, and each repository it
//! is known under gives a repo digest (`repo@<manifest digest>`).
//!
//! An image is found by ID (`sha256:<config>` or the bare hex), by record name, by any
//! docker-style reference (`busybox` → `docker.io/library/busybox:latest`), or by digest
//! reference (`repo@sha256:<manifest>`).

use std::collections::{BTreeMap, BTreeSet};

use berth_images::manifest::{load_config, resolve_manifest};
use berth_images::{normalize, Digest};
use berth_proto::v1::Image as Record;
use k8s_cri::v1::{ImageSpec, Int64Value};

use crate::daemon::Daemon;
use crate::error::{ApiError, ApiResult};
use crate::images::image_error;

/// The label containerd uses for images kubelet must never garbage-collect.
const PINNED_LABEL: &str = "io.cri-containerd.pinned";

/// One CRI image and the records naming it.
#[derive(Debug, Clone)]
pub struct CriImage {
    /// The config digest.
    pub id: Digest,
    /// The platform manifest of the first record.
    pub manifest: Digest,
    pub records: Vec<Record>,
}

/// Every image in `ns`, records grouped by config digest (records whose manifest cannot be
/// read are skipped with a warning).
pub fn all(d: &Daemon, ns: &str) -> ApiResult<Vec<CriImage>> {
    let platform = d.images.registry.platform().map_err(image_error)?;
    let mut by_id: BTreeMap<String, CriImage> = BTreeMap::new();
    for rec in d.store.images(ns)? {
        let resolved = Digest::parse(&rec.digest)
            .and_then(|dg| resolve_manifest(&d.images.content, &dg, &platform));
        let (manifest, m) = match resolved {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(image = rec.name, "unreadable image record: {e}");
                continue;
            }
        };
        let Ok(id) = Digest::from_oci(m.config().digest()) else {
            continue;
        };
        by_id
            .entry(id.to_string())
            .or_insert_with(|| CriImage {
                id,
                manifest,
                records: Vec::new(),
            })
            .records
            .push(rec);
    }
    Ok(by_id.into_values().collect())
}

/// A bare 64-hex ID or a `sha256:` digest.
fn as_digest(s: &str) -> Option<Digest> {
    if s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Digest::parse(&format!("sha256:{s}")).ok();
    }
    s.starts_with("sha256:")
        .then(|| Digest::parse(s).ok())
        .flatten()
}

/// The image `spec` names, or None. An empty or malformed reference is InvalidArgument.
pub fn find(d: &Daemon, ns: &str, spec: &str) -> ApiResult<Option<CriImage>> {
    if spec.is_empty() {
        return Err(ApiError::InvalidArgument("no image given".into()));
    }
    let images = all(d, ns)?;
    if let Some(dg) = as_digest(spec) {
        if spec.starts_with("sha256:") && dg.as_str() != spec {
            return Err(ApiError::InvalidArgument(format!("bad image id {spec:?}")));
        }
        let found = images
            .iter()
            .find(|i| i.id == dg)
            .or_else(|| images.iter().find(|i| i.manifest == dg))
            .or_else(|| {
                images
                    .iter()
                    .find(|i| i.records.iter().any(|r| r.digest == dg.as_str()))
            });
        return Ok(found.cloned());
    }
    if spec.starts_with("sha256:") {
        return Err(ApiError::InvalidArgument(format!("bad image id {spec:?}")));
    }
    let by_name = |name: &str| {
        images
            .iter()
            .find(|i| i.records.iter().any(|r| r.name == name))
            .cloned()
    };
    if let Some(found) = by_name(spec) {
        return Ok(Some(found));
    }
    let r =
        normalize(spec).map_err(|e| ApiError::InvalidArgument(format!("image {spec:?}: {e}")))?;
    if let Some(found) = by_name(&r.to_string()) {
        return Ok(Some(found));
    }
    // `repo@digest`: any record of that repository with that manifest.
    if let Some(dg) = &r.digest {
        let repo = r.name();
        return Ok(images
            .iter()
            .find(|i| {
                (i.manifest == *dg || i.records.iter().any(|rec| rec.digest == dg.as_str()))
                    && i.records.iter().any(|rec| repository(&rec.name) == repo)
            })
            .cloned());
    }
    Ok(None)
}

/// `registry/repository` of a record name (the name itself if it is not a reference).
fn repository(name: &str) -> String {
    normalize(name).map_or_else(|_| name.to_string(), |r| r.name())
}

/// uid or user name of an image's `User` (`1000:1000` → uid 1000; `nobody` → name).
fn user_of(user: &str) -> (Option<Int64Value>, String) {
    let user = user.split(':').next().unwrap_or("");
    if user.is_empty() {
        return (None, String::new());
    }
    match user.parse::<i64>() {
        Ok(uid) => (Some(Int64Value { value: uid }), String::new()),
        Err(_) => (None, user.to_string()),
    }
}

impl CriImage {
    pub fn repo_tags(&self) -> Vec<String> {
        let tags: BTreeSet<String> = self
            .records
            .iter()
            .filter(|r| !r.name.contains('@') && normalize(&r.name).is_ok())
            .map(|r| r.name.clone())
            .collect();
        tags.into_iter().collect()
    }

    pub fn repo_digests(&self) -> Vec<String> {
        let digests: BTreeSet<String> = self
            .records
            .iter()
            .filter(|r| normalize(&r.name).is_ok())
            .map(|r| format!("{}@{}", repository(&r.name), r.digest))
            .collect();
        digests.into_iter().collect()
    }

    /// The CRI view of this image (reads its config from the content store).
    pub fn to_cri(&self, d: &Daemon) -> ApiResult<k8s_cri::v1::Image> {
        let config = load_config(&d.images.content, &self.id).map_err(image_error)?;
        let user = config
            .config()
            .as_ref()
            .and_then(|c| c.user().clone())
            .unwrap_or_default();
        let (uid, username) = user_of(&user);
        let manifest = berth_images::manifest::load_manifest(&d.images.content, &self.manifest)
            .map_err(image_error)?;
        let size = self.records.iter().map(|r| r.size).max().unwrap_or(0);
        let pinned = self.records.iter().any(|r| {
            r.labels
                .get(PINNED_LABEL)
                .is_some_and(|v| v == "pinned" || v == "true")
        });
        Ok(k8s_cri::v1::Image {
            id: self.id.to_string(),
            repo_tags: self.repo_tags(),
            repo_digests: self.repo_digests(),
            size,
            uid,
            username,
            spec: Some(ImageSpec {
                image: self.id.to_string(),
                annotations: manifest.annotations().clone().unwrap_or_default(),
                ..Default::default()
            }),
            pinned,
        })
    }

    /// ImageStatus' verbose `info` map: `info` holds a JSON document like containerd's (the
    /// chain ID, the manifest digest, the names and the whole image config).
    pub fn verbose_info(&self, d: &Daemon) -> ApiResult<std::collections::HashMap<String, String>> {
        let config = load_config(&d.images.content, &self.id).map_err(image_error)?;
        let chain_id =
            berth_images::image_chain_id(&d.images.content, &self.manifest).map_err(image_error)?;
        let names: Vec<&str> = self.records.iter().map(|r| r.name.as_str()).collect();
        let doc = serde_json::json!({
            "id": self.id.as_str(),
            "manifestDigest": self.manifest.as_str(),
            "chainID": chain_id,
            "names": names,
            "imageSpec": config,
        });
        let text = serde_json::to_string(&doc).map_err(|e| ApiError::internal("info", e))?;
        Ok([("info".to_string(), text)].into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users() {
        assert_eq!(user_of(""), (None, String::new()));
        assert_eq!(user_of("1000:1000").0.map(|u| u.value), Some(1000));
        assert_eq!(user_of("nobody:x"), (None, "nobody".to_string()));
    }

    #[test]
    fn ids() {
        let hex = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";
        assert_eq!(as_digest(hex).unwrap().hex(), hex);
        assert!(as_digest(&format!("sha256:{hex}")).is_some());
        assert!(as_digest("busybox").is_none());
        assert!(as_digest("sha256:abc").is_none());
        assert_eq!(
            repository("busybox:latest"),
            "docker.io/library/busybox".to_string()
        );
    }
}
