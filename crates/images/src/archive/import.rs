//! Importing image archives: OCI image layouts (`index.json` + `blobs/`, names from the
//! `io.containerd.image.name` / `org.opencontainers.image.ref.name` annotations) and
//! `docker save` archives (`manifest.json` + layer tars + config, converted to OCI manifests).
//! Blobs are streamed into the content store and verified; OCI input keeps its digests.
//! On any error the blobs this import added are removed again.

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::path::{Path, PathBuf};

use oci_spec::image::ImageIndex;

use crate::content::{BlobInfo, ContentStore, MAX_JSON_SIZE};
use crate::manifest::{self, Platform};
use crate::unpack::apply::decompress;
use crate::unpack::safe_fs::clean_path;
use crate::unpack::tar_guard::TarGuard;
use crate::{normalize, Digest, ImageError};

/// The most entries an archive may have.
pub const MAX_ARCHIVE_ENTRIES: usize = 100_000;

/// Annotation with the full image name (containerd).
pub const ANNOTATION_IMAGE_NAME: &str = "io.containerd.image.name";
/// Annotation with the reference (OCI: a tag or a full name).
pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";

/// One image found in an archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportedImage {
    /// The full normalized name, if the archive named the image.
    pub name: Option<String>,
    /// The manifest (or index) digest to record.
    pub manifest: Digest,
    /// The config digest (of the linux/amd64 manifest for an index).
    pub config: Digest,
}

#[derive(Default)]
pub(crate) struct Contents {
    /// Small JSON files by path.
    pub(crate) json: HashMap<PathBuf, Vec<u8>>,
    /// Other files, stored as blobs, by path.
    files: HashMap<PathBuf, BlobInfo>,
    /// Symlinks by path (docker save links duplicate layers).
    links: HashMap<PathBuf, PathBuf>,
    /// Blobs this import created.
    created: Vec<crate::Digest>,
}

impl Contents {
    pub(crate) fn file(&self, path: &Path) -> Option<&BlobInfo> {
        let mut p = path.to_path_buf();
        for _ in 0..8 {
            if let Some(b) = self.files.get(&p) {
                return Some(b);
            }
            p = self.links.get(&p)?.clone();
        }
        None
    }
}

/// Imports every image of an OCI layout or `docker save` archive (optionally gzipped).
pub fn import_archive(
    store: &ContentStore,
    reader: impl Read,
) -> Result<Vec<ImportedImage>, ImageError> {
    let mut contents = Contents::default();
    // Blobs of this import are safe from a concurrent gc until it returns.
    let mut lease = store.lease(&[]);
    let result = read_archive(store, reader, &mut contents, &mut lease)
        .and_then(|()| resolve(store, &mut contents));
    for d in &contents.created {
        lease.add(d);
    }
    // On error everything this import added goes; on success what no imported image refers
    // to (docker's per-layer `json` and `VERSION` files, stray blobs).
    let keep = match &result {
        Ok(images) => referenced(store, images),
        Err(_) => HashSet::new(),
    };
    for d in &contents.created {
        if !keep.contains(d) {
            let _ = store.delete(d);
        }
    }
    drop(lease);
    result
}

/// The imported images and every blob below them.
fn referenced(store: &ContentStore, images: &[ImportedImage]) -> HashSet<Digest> {
    let mut keep = HashSet::new();
    let mut stack: Vec<Digest> = images.iter().map(|i| i.manifest.clone()).collect();
    while let Some(d) = stack.pop() {
        if keep.insert(d.clone()) {
            stack.extend(manifest::children(store, &d).unwrap_or_default());
        }
    }
    keep
}

fn bad(reason: impl Into<String>) -> ImageError {
    ImageError::invalid("image archive", reason)
}

fn read_archive(
    store: &ContentStore,
    reader: impl Read,
    contents: &mut Contents,
    lease: &mut crate::Lease,
) -> Result<(), ImageError> {
    let mut archive = tar::Archive::new(TarGuard::new(decompress(reader)?));
    let entries = archive.entries().map_err(|e| bad(e.to_string()))?;
    for (n, entry) in entries.enumerate() {
        if n >= MAX_ARCHIVE_ENTRIES {
            return Err(bad(format!("more than {MAX_ARCHIVE_ENTRIES} entries")));
        }
        let mut entry = entry.map_err(|e| bad(e.to_string()))?;
        let Some(path) = clean_path(&entry.path_bytes())? else {
            continue;
        };
        match entry.header().entry_type() {
            tar::EntryType::Directory | tar::EntryType::XGlobalHeader => continue,
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| bad("symlink without target"))?
                    .into_owned();
                let joined = path.parent().unwrap_or(Path::new("")).join(Path::new(
                    std::str::from_utf8(&target).map_err(|_| bad("non-UTF-8 symlink"))?,
                ));
                let resolved = normalize_lexically(&joined).ok_or_else(|| {
                    ImageError::unsafe_entry(
                        path.display().to_string(),
                        "symlink escapes the archive",
                    )
                })?;
                contents.links.insert(path, resolved);
                continue;
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {}
            other => {
                return Err(ImageError::unsafe_entry(
                    path.display().to_string(),
                    format!("unexpected {other:?} entry in an image archive"),
                ))
            }
        }
        let size = entry.size();
        let shown = path.display().to_string();
        let blob_digest = path
            .strip_prefix("blobs/sha256")
            .ok()
            .and_then(|h| h.to_str())
            .map(|h| Digest::parse(&format!("sha256:{h}")))
            .transpose()
            .map_err(|_| bad(format!("{shown} is not named by a sha256 digest")))?;
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if blob_digest.is_none()
            && (name.ends_with(".json") || name == "repositories" || name == "oci-layout")
        {
            if size > MAX_JSON_SIZE {
                return Err(bad(format!("{shown} is larger than {MAX_JSON_SIZE} bytes")));
            }
            let mut data = Vec::with_capacity(size as usize);
            (&mut entry)
                .take(MAX_JSON_SIZE)
                .read_to_end(&mut data)
                .map_err(|e| bad(format!("{shown}: {e}")))?;
            contents.json.insert(path, data);
            continue;
        }
        if let Some(d) = &blob_digest {
            lease.add(d);
        }
        let existed = blob_digest
            .as_ref()
            .is_some_and(|d| store.size(d) == Some(size));
        let info = if existed {
            std::io::copy(&mut entry, &mut std::io::sink())
                .map_err(|e| bad(format!("{shown}: {e}")))?;
            BlobInfo {
                digest: blob_digest.clone().unwrap_or_else(|| unreachable!()),
                size,
            }
        } else {
            let (info, new) = store
                .ingest_new(&mut entry, blob_digest.as_ref().map(|d| (d, size)))
                .map_err(|e| match e {
                    ImageError::Mismatch { expected, detail } => ImageError::Mismatch {
                        expected,
                        detail: format!("{shown}: {detail}"),
                    },
                    e => e,
                })?;
            lease.add(&info.digest);
            if new {
                contents.created.push(info.digest.clone());
            }
            info
        };
        contents.files.insert(path, info);
    }
    Ok(())
}

/// `a/b/../c` → `a/c`; `None` if it climbs above the top.
fn normalize_lexically(p: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            std::path::Component::Normal(n) => out.push(n),
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                if !out.pop() {
                    return None;
                }
            }
            _ => return None,
        }
    }
    Some(out)
}

fn resolve(
    store: &ContentStore,
    contents: &mut Contents,
) -> Result<Vec<ImportedImage>, ImageError> {
    if let Some(data) = contents.json.get(Path::new("index.json")) {
        return resolve_oci(store, data);
    }
    if let Some(data) = contents.json.get(Path::new("manifest.json")) {
        let mut created = std::mem::take(&mut contents.created);
        let result = super::docker::resolve_docker(store, data, contents, &mut created);
        contents.created = created;
        return result;
    }
    Err(bad("neither index.json nor manifest.json found"))
}

fn resolve_oci(store: &ContentStore, data: &[u8]) -> Result<Vec<ImportedImage>, ImageError> {
    let index: ImageIndex =
        serde_json::from_slice(data).map_err(|e| bad(format!("index.json: {e}")))?;
    if index.manifests().len() > manifest::MAX_INDEX_ENTRIES {
        return Err(bad("index.json lists too many manifests"));
    }
    let mut out = Vec::new();
    for desc in index.manifests() {
        let digest = Digest::from_oci(desc.digest())?;
        match store.size(&digest) {
            Some(s) if s == desc.size() => {}
            Some(s) => {
                return Err(ImageError::Mismatch {
                    expected: digest.to_string(),
                    detail: format!("index.json says {} bytes, the blob has {s}", desc.size()),
                })
            }
            None => return Err(ImageError::NotFound(digest.to_string())),
        }
        let config = check_image(store, &digest)?;
        let annotations = desc.annotations().clone().unwrap_or_default();
        let name = annotations
            .get(ANNOTATION_IMAGE_NAME)
            .or_else(|| {
                // A bare tag (`latest`) names no image; `busybox:1`, `x/y` or
                // `host/x@sha256:..` do.
                annotations
                    .get(ANNOTATION_REF_NAME)
                    .filter(|r| r.contains([':', '/', '@']))
            })
            .map(|n| normalize(n).map(|r| r.to_string()))
            .transpose()?;
        out.push(ImportedImage {
            name,
            manifest: digest,
            config,
        });
    }
    Ok(out)
}

/// Checks that an image (manifest, or index with at least one complete manifest) is complete;
/// returns the config digest (of the default platform's manifest for an index).
pub(crate) fn check_image(store: &ContentStore, digest: &Digest) -> Result<Digest, ImageError> {
    let data = store.read_blob(digest, MAX_JSON_SIZE)?;
    if !manifest::is_index(&data) {
        let m = manifest::parse_manifest(digest, &data)?;
        manifest::check_complete(store, &m)?;
        return Digest::from_oci(m.config().digest());
    }
    if let Ok((_, m)) = manifest::resolve_manifest(store, digest, &Platform::default()) {
        manifest::check_complete(store, &m)?;
        return Digest::from_oci(m.config().digest());
    }
    let index = manifest::load_index(store, digest)?;
    let mut last = ImageError::invalid(format!("index {digest}"), "no complete manifest");
    for child in index.manifests() {
        let child = Digest::from_oci(child.digest())?;
        match store
            .read_blob(&child, MAX_JSON_SIZE)
            .and_then(|d| manifest::parse_manifest(&child, &d))
        {
            Ok(m) => match manifest::check_complete(store, &m) {
                Ok(()) => return Digest::from_oci(m.config().digest()),
                Err(e) => last = e,
            },
            Err(e) => last = e,
        }
    }
    Err(last)
}
