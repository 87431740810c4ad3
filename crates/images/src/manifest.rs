//! Manifests, indexes and configs in the content store: media types, bounded parsing,
//! platform selection and the blobs a document refers to.

use oci_spec::image::{ImageConfiguration, ImageIndex, ImageManifest};
use serde::Deserialize;

use crate::content::{ContentStore, MAX_JSON_SIZE};
use crate::{Digest, ImageError};

/// OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// OCI image config.
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// OCI gzip layer.
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// OCI zstd layer.
pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
/// OCI uncompressed layer.
pub const OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
/// Docker schema 2 manifest.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list.
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

/// The most layers an image may have (overlay's limit on lower dirs).
pub const MAX_LAYERS: usize = 128;
/// The most manifests an index may list.
pub const MAX_INDEX_ENTRIES: usize = 1024;

/// An OS/architecture(/variant) to select from an index, `linux/amd64` by default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

impl Default for Platform {
    fn default() -> Self {
        Platform {
            os: "linux".into(),
            architecture: "amd64".into(),
            variant: None,
        }
    }
}

impl Platform {
    /// Parses `os/arch[/variant]`.
    pub fn parse(s: &str) -> Result<Platform, ImageError> {
        let parts: Vec<&str> = s.split('/').collect();
        match parts.as_slice() {
            [os, arch] | [os, arch, _] if !os.is_empty() && !arch.is_empty() => Ok(Platform {
                os: os.to_string(),
                architecture: arch.to_string(),
                variant: parts.get(2).map(|v| v.to_string()),
            }),
            _ => Err(ImageError::invalid(
                "platform",
                format!("{s:?} is not os/arch[/variant]"),
            )),
        }
    }

    fn matches(&self, p: &oci_spec::image::Platform) -> bool {
        p.os().to_string() == self.os
            && p.architecture().to_string() == self.architecture
            && match (&self.variant, p.variant()) {
                (Some(want), Some(have)) => want == have,
                (Some(_), None) => false,
                (None, _) => true,
            }
    }
}

/// Just enough of any JSON document to tell what it is and what it refers to.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Probe {
    #[serde(default)]
    media_type: Option<String>,
    #[serde(default)]
    manifests: Option<Vec<ProbeDescriptor>>,
    #[serde(default)]
    config: Option<ProbeDescriptor>,
    #[serde(default)]
    layers: Option<Vec<ProbeDescriptor>>,
}

#[derive(Deserialize)]
struct ProbeDescriptor {
    digest: String,
}

/// Whether a document is an index (or docker manifest list).
pub fn is_index(data: &[u8]) -> bool {
    serde_json::from_slice::<Probe>(data).is_ok_and(|p| {
        p.manifests.is_some()
            || matches!(p.media_type.as_deref(), Some(OCI_INDEX) | Some(DOCKER_LIST))
    })
}

/// The blobs a blob refers to (an index's manifests, a manifest's config and layers); none
/// for anything else.
pub(crate) fn children(store: &ContentStore, digest: &Digest) -> Result<Vec<Digest>, ImageError> {
    let Some(size) = store.size(digest) else {
        return Ok(Vec::new());
    };
    if size > MAX_JSON_SIZE {
        return Ok(Vec::new());
    }
    let mut first = [0u8; 1];
    {
        use std::io::Read;
        let mut f = store.open_blob(digest)?;
        if f.read(&mut first)
            .map_err(|e| ImageError::io("read blob", e))?
            == 0
            || first[0] != b'{'
        {
            return Ok(Vec::new());
        }
    }
    let data = store.read_blob(digest, MAX_JSON_SIZE)?;
    let Ok(probe) = serde_json::from_slice::<Probe>(&data) else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    let descs = probe
        .manifests
        .into_iter()
        .flatten()
        .chain(probe.config)
        .chain(probe.layers.into_iter().flatten());
    for d in descs {
        if let Ok(d) = Digest::parse(&d.digest) {
            out.push(d);
        }
    }
    Ok(out)
}

fn parse<T: serde::de::DeserializeOwned>(
    what: &str,
    digest: &Digest,
    data: &[u8],
) -> Result<T, ImageError> {
    serde_json::from_slice(data)
        .map_err(|e| ImageError::invalid(format!("{what} {digest}"), e.to_string()))
}

/// Reads and parses a manifest, checking its layer count and digests.
pub fn load_manifest(store: &ContentStore, digest: &Digest) -> Result<ImageManifest, ImageError> {
    let data = store.read_blob(digest, MAX_JSON_SIZE)?;
    parse_manifest(digest, &data)
}

pub(crate) fn parse_manifest(digest: &Digest, data: &[u8]) -> Result<ImageManifest, ImageError> {
    if is_index(data) {
        return Err(ImageError::invalid(
            format!("manifest {digest}"),
            "is an index",
        ));
    }
    let m: ImageManifest = parse("manifest", digest, data)?;
    if m.layers().len() > MAX_LAYERS {
        return Err(ImageError::invalid(
            format!("manifest {digest}"),
            format!("{} layers, more than {MAX_LAYERS}", m.layers().len()),
        ));
    }
    Digest::from_oci(m.config().digest())?;
    for l in m.layers() {
        Digest::from_oci(l.digest())?;
    }
    Ok(m)
}

/// Reads and parses an index.
pub fn load_index(store: &ContentStore, digest: &Digest) -> Result<ImageIndex, ImageError> {
    let data = store.read_blob(digest, MAX_JSON_SIZE)?;
    let index: ImageIndex = parse("index", digest, &data)?;
    if index.manifests().len() > MAX_INDEX_ENTRIES {
        return Err(ImageError::invalid(
            format!("index {digest}"),
            "too many manifests",
        ));
    }
    Ok(index)
}

/// Reads and parses an image config.
pub fn load_config(
    store: &ContentStore,
    digest: &Digest,
) -> Result<ImageConfiguration, ImageError> {
    let data = store.read_blob(digest, MAX_JSON_SIZE)?;
    parse("config", digest, &data)
}

/// Picks the manifest for `platform` from an index document.
pub(crate) fn select_platform(
    index: &ImageIndex,
    platform: &Platform,
    what: &str,
) -> Result<oci_spec::image::Descriptor, ImageError> {
    index
        .manifests()
        .iter()
        .find(|d| d.platform().as_ref().is_some_and(|p| platform.matches(p)))
        .or_else(|| match index.manifests().as_slice() {
            // A single entry without a platform (e.g. an OCI layout of one image).
            [only] if only.platform().is_none() => Some(only),
            _ => None,
        })
        .cloned()
        .ok_or_else(|| {
            ImageError::invalid(
                what.to_string(),
                format!("no manifest for {}/{}", platform.os, platform.architecture),
            )
        })
}

/// Follows an index (if `digest` is one) to the manifest for `platform`.
pub fn resolve_manifest(
    store: &ContentStore,
    digest: &Digest,
    platform: &Platform,
) -> Result<(Digest, ImageManifest), ImageError> {
    let mut digest = digest.clone();
    for _ in 0..4 {
        let data = store.read_blob(&digest, MAX_JSON_SIZE)?;
        if !is_index(&data) {
            return Ok((digest.clone(), parse_manifest(&digest, &data)?));
        }
        let index: ImageIndex = parse("index", &digest, &data)?;
        let desc = select_platform(&index, platform, &format!("index {digest}"))?;
        digest = Digest::from_oci(desc.digest())?;
    }
    Err(ImageError::invalid(
        format!("index {digest}"),
        "nested too deeply",
    ))
}

/// Checks that a manifest's config and layers are all present with their declared sizes.
pub fn check_complete(store: &ContentStore, manifest: &ImageManifest) -> Result<(), ImageError> {
    for d in std::iter::once(manifest.config()).chain(manifest.layers()) {
        let digest = Digest::from_oci(d.digest())?;
        match store.size(&digest) {
            Some(size) if size == d.size() => {}
            Some(size) => {
                return Err(ImageError::Mismatch {
                    expected: digest.to_string(),
                    detail: format!(
                        "stored blob has {size} bytes, the manifest says {}",
                        d.size()
                    ),
                })
            }
            None => return Err(ImageError::NotFound(digest.to_string())),
        }
    }
    Ok(())
}

/// The bytes an image takes in the content store: manifest, config and layers (compressed).
pub fn image_size(
    store: &ContentStore,
    digest: &Digest,
    platform: &Platform,
) -> Result<u64, ImageError> {
    let (digest, m) = resolve_manifest(store, digest, platform)?;
    let manifest_size = store.size(&digest).unwrap_or(0);
    Ok(manifest_size + m.config().size() + m.layers().iter().map(|l| l.size()).sum::<u64>())
}

/// The identity of a stack of layers: `chain(1) = diff_id(1)`,
/// `chain(n) = sha256(chain(n-1) + " " + diff_id(n))`.
pub fn chain_ids(diff_ids: &[String]) -> Result<Vec<Digest>, ImageError> {
    let mut out: Vec<Digest> = Vec::with_capacity(diff_ids.len());
    for d in diff_ids {
        let d = Digest::parse(d)?;
        let next = match out.last() {
            None => d,
            Some(prev) => Digest::of(format!("{prev} {d}").as_bytes()),
        };
        out.push(next);
    }
    Ok(out)
}
