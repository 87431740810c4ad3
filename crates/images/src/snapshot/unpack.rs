//! Unpacking an image's layers into committed snapshots, one per chain ID.

use std::fs;

use oci_spec::image::ImageConfiguration;

use super::index::Committed;
use super::Snapshotter;
use crate::content::{ContentStore, MAX_JSON_SIZE};
use crate::manifest::{self, Platform};
use crate::unpack::apply::apply_layer;
use crate::{Digest, ImageError};

/// An image whose layers are all committed snapshots.
#[derive(Debug, Clone)]
pub struct UnpackedImage {
    /// The chain ID of the top layer: the parent to `prepare` a container's snapshot on.
    pub chain_id: String,
    /// The platform manifest that was unpacked (the index resolved, if it was one).
    pub manifest: Digest,
    /// The config blob's digest.
    pub config_digest: Digest,
    /// The image config.
    pub config: ImageConfiguration,
}

/// The chain IDs of an image's layers (bottom first) and its config, without unpacking.
pub fn image_chain(
    store: &ContentStore,
    manifest_digest: &Digest,
    platform: &Platform,
) -> Result<
    (
        Digest,
        oci_spec::image::ImageManifest,
        Digest,
        ImageConfiguration,
        Vec<Digest>,
    ),
    ImageError,
> {
    let (digest, m) = manifest::resolve_manifest(store, manifest_digest, platform)?;
    manifest::check_complete(store, &m)?;
    let config_digest = Digest::from_oci(m.config().digest())?;
    let data = store.read_blob(&config_digest, MAX_JSON_SIZE)?;
    let config: ImageConfiguration = serde_json::from_slice(&data)
        .map_err(|e| ImageError::invalid(format!("config {config_digest}"), e.to_string()))?;
    let diff_ids = config.rootfs().diff_ids();
    if diff_ids.len() != m.layers().len() {
        return Err(ImageError::invalid(
            format!("image {digest}"),
            format!(
                "{} layers but {} diff IDs in the config",
                m.layers().len(),
                diff_ids.len()
            ),
        ));
    }
    if diff_ids.is_empty() {
        return Err(ImageError::invalid(format!("image {digest}"), "no layers"));
    }
    let chain = manifest::chain_ids(diff_ids)?;
    Ok((digest, m, config_digest, config, chain))
}

impl Snapshotter {
    /// Unpacks the image `manifest_digest` (a manifest, or an index resolved for linux/amd64)
    /// from `store`: each layer not yet committed is applied to a new snapshot, its diff ID
    /// checked, and committed under its chain ID. A failed layer leaves nothing behind.
    pub fn unpack(
        &self,
        store: &ContentStore,
        manifest_digest: &Digest,
    ) -> Result<UnpackedImage, ImageError> {
        self.unpack_for(store, manifest_digest, &Platform::default())
    }

    /// [`Snapshotter::unpack`] for another platform.
    pub fn unpack_for(
        &self,
        store: &ContentStore,
        manifest_digest: &Digest,
        platform: &Platform,
    ) -> Result<UnpackedImage, ImageError> {
        let _op = self.shared_op()?;
        let (digest, m, config_digest, config, chain) =
            image_chain(store, manifest_digest, platform)?;
        let diff_ids = config.rootfs().diff_ids();
        for (i, layer) in m.layers().iter().enumerate() {
            let chain_id = chain[i].to_string();
            if self.is_committed(&chain_id) {
                continue;
            }
            let parent = i.checked_sub(1).map(|p| chain[p].to_string());
            let id = {
                let mut index = self.lock()?;
                let id = index.allocate();
                self.save(&index)?;
                id
            };
            let dir = self.dir(id);
            let result = (|| {
                let fs_dir = dir.join("fs");
                fs::create_dir_all(&fs_dir)
                    .map_err(|e| ImageError::io_path("create", &fs_dir, e))?;
                let blob = store.open_blob(&Digest::from_oci(layer.digest())?)?;
                let applied = apply_layer(blob, &fs_dir)?;
                if applied.diff_id.as_str() != diff_ids[i] {
                    return Err(ImageError::Mismatch {
                        expected: diff_ids[i].clone(),
                        detail: format!("layer {} unpacks to {}", layer.digest(), applied.diff_id),
                    });
                }
                Ok(())
            })();
            if let Err(e) = result {
                let _ = fs::remove_dir_all(&dir);
                return Err(e);
            }
            let mut index = self.lock()?;
            if index.committed.contains_key(&chain_id) {
                // Unpacked concurrently by someone else: keep theirs.
                drop(index);
                let _ = fs::remove_dir_all(&dir);
                continue;
            }
            index.committed.insert(chain_id, Committed { id, parent });
            if let Err(e) = self.save(&index) {
                index.committed.remove(&chain[i].to_string());
                drop(index);
                let _ = fs::remove_dir_all(&dir);
                return Err(e);
            }
        }
        Ok(UnpackedImage {
            chain_id: chain[chain.len() - 1].to_string(),
            manifest: digest,
            config_digest,
            config,
        })
    }
}

/// The chain ID an image unpacks to (its top layer's), without unpacking: what the daemon
/// passes to [`Snapshotter::gc`] for the images it keeps.
pub fn image_chain_id(
    store: &ContentStore,
    manifest_digest: &Digest,
) -> Result<String, ImageError> {
    let (.., chain) = image_chain(store, manifest_digest, &Platform::default())?;
    Ok(chain[chain.len() - 1].to_string())
}
