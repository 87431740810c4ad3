//! Pulling an image over the OCI distribution protocol: resolve the reference (index →
//! platform manifest), then download the config and layers (bounded parallelism, blobs
//! already present skipped), each verified by digest and size as it is stored.

use futures_util::StreamExt;
use oci_spec::image::{ImageConfiguration, ImageIndex};

use super::client::Client;
use super::config::RegistryConfig;
use crate::content::{ContentStore, MAX_JSON_SIZE};
use crate::manifest::{self, DOCKER_LIST, DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST};
use crate::{Digest, ImageError, Reference};

const MANIFEST_TYPES: [&str; 4] = [OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST];

/// What a blob is, in progress events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobKind {
    Index,
    Manifest,
    Config,
    Layer,
}

/// The state of one blob of a pull (or push).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullStatus {
    /// Fetching the manifest (or index).
    Resolving,
    /// Already in the content store: not downloaded.
    Exists,
    /// Bytes arriving.
    Downloading,
    /// Bytes being sent (push).
    Uploading,
    /// Stored and verified (pull) or accepted by the registry (push).
    Done,
}

/// A progress event of [`pull`] (or [`crate::push`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    pub digest: Option<Digest>,
    pub kind: BlobKind,
    pub status: PullStatus,
    /// Bytes downloaded so far.
    pub done: u64,
    /// The blob's size (0 while unknown).
    pub total: u64,
}

/// A pulled image: what the daemon records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PulledImage {
    /// The full reference that was pulled.
    pub name: String,
    /// The platform manifest's digest (the record's target).
    pub manifest: Digest,
    /// The index the manifest was picked from, if the reference named one (not stored).
    pub index: Option<Digest>,
    /// The config's digest.
    pub config: Digest,
    /// The manifest's, config's and layers' bytes.
    pub size: u64,
}

/// Fetches a manifest or index and checks its digest (against `expected`, else the
/// registry's `Docker-Content-Digest` if given).
async fn fetch_manifest(
    client: &Client,
    repo: &str,
    object: &str,
    expected: Option<&Digest>,
) -> Result<(Digest, Vec<u8>), ImageError> {
    let resp = client
        .get(&format!("{repo}/manifests/{object}"), &MANIFEST_TYPES)
        .await?;
    let header = resp
        .headers()
        .get("docker-content-digest")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| Digest::parse(v).ok());
    let data = client.read_limited(resp, MAX_JSON_SIZE).await?;
    let digest = Digest::of(&data);
    if let Some(want) = expected.or(header.as_ref()) {
        if *want != digest {
            return Err(ImageError::Mismatch {
                expected: want.to_string(),
                detail: format!(
                    "manifest {object} from {} hashes to {digest}",
                    client.endpoint.base
                ),
            });
        }
    }
    Ok((digest, data))
}

/// Downloads one blob into the store, verifying digest and size.
async fn fetch_blob(
    clients: &[Client],
    repo: &str,
    digest: &Digest,
    size: u64,
    kind: BlobKind,
    store: &ContentStore,
    events: &tokio::sync::mpsc::UnboundedSender<Progress>,
) -> Result<(), ImageError> {
    let event = |status, done| Progress {
        digest: Some(digest.clone()),
        kind,
        status,
        done,
        total: size,
    };
    if store.size(digest) == Some(size) {
        let _ = events.send(event(PullStatus::Exists, size));
        return Ok(());
    }
    let mut last = None;
    for client in clients {
        let attempt = async {
            let mut resp = client.get(&format!("{repo}/blobs/{digest}"), &[]).await?;
            if resp.content_length().is_some_and(|l| l != size) {
                return Err(ImageError::Mismatch {
                    expected: digest.to_string(),
                    detail: format!(
                        "registry sends {:?} bytes, the manifest says {size}",
                        resp.content_length()
                    ),
                });
            }
            let mut writer = store.writer(Some((digest, size)))?;
            let _ = events.send(event(PullStatus::Downloading, 0));
            while let Some(chunk) = resp.chunk().await.map_err(|e| client.err(e.to_string()))? {
                writer.write_chunk(&chunk)?;
                let _ = events.send(event(PullStatus::Downloading, writer.written()));
            }
            writer.commit()?;
            let _ = events.send(event(PullStatus::Done, size));
            Ok(())
        };
        match attempt.await {
            Ok(()) => return Ok(()),
            // A corrupt blob is not retried elsewhere: the content is wrong, not missing.
            Err(e @ ImageError::Mismatch { .. }) => return Err(e),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| ImageError::NotFound(digest.to_string())))
}

/// Pulls `reference` into `store` following `cfg` (mirrors, plain HTTP, auth, platform);
/// `progress` sees every blob's state and byte counts.
pub async fn pull(
    store: &ContentStore,
    reference: &Reference,
    cfg: &RegistryConfig,
    mut progress: impl FnMut(Progress),
) -> Result<PulledImage, ImageError> {
    let platform = cfg.platform()?;
    let repo = reference.repository.as_str();
    let clients: Vec<Client> = cfg
        .endpoints(&reference.registry)
        .into_iter()
        .map(|ep| Client::new(ep, &reference.registry))
        .collect::<Result<_, _>>()?;

    // Resolve on the first endpoint that answers; later requests start there.
    progress(Progress {
        digest: reference.digest.clone(),
        kind: BlobKind::Manifest,
        status: PullStatus::Resolving,
        done: 0,
        total: 0,
    });
    let mut resolved = None;
    let mut last = None;
    for (i, client) in clients.iter().enumerate() {
        match fetch_manifest(client, repo, &reference.object(), reference.digest.as_ref()).await {
            Ok(found) => {
                resolved = Some((i, found));
                break;
            }
            Err(e @ ImageError::Mismatch { .. }) => return Err(e),
            Err(e) => last = Some(e),
        }
    }
    let Some((first, (mut digest, mut data))) = resolved else {
        return Err(
            last.unwrap_or_else(|| ImageError::registry(&reference.registry, "no endpoint"))
        );
    };
    let clients: Vec<Client> = {
        let mut c = clients;
        c.rotate_left(first);
        c
    };
    let mut index = None;
    if manifest::is_index(&data) {
        let idx: ImageIndex = serde_json::from_slice(&data)
            .map_err(|e| ImageError::invalid(format!("index {digest}"), e.to_string()))?;
        if idx.manifests().len() > manifest::MAX_INDEX_ENTRIES {
            return Err(ImageError::invalid(
                format!("index {digest}"),
                "too many manifests",
            ));
        }
        let desc = manifest::select_platform(&idx, &platform, &format!("{reference}"))?;
        let child = Digest::from_oci(desc.digest())?;
        index = Some(digest);
        (digest, data) = fetch_manifest(&clients[0], repo, child.as_str(), Some(&child)).await?;
    }
    let m = manifest::parse_manifest(&digest, &data)?;
    let config_digest = Digest::from_oci(m.config().digest())?;
    let mut blobs = vec![(config_digest.clone(), m.config().size(), BlobKind::Config)];
    for l in m.layers() {
        blobs.push((Digest::from_oci(l.digest())?, l.size(), BlobKind::Layer));
    }
    let mut all: Vec<Digest> = blobs.iter().map(|b| b.0.clone()).collect();
    all.push(digest.clone());
    let _lease = store.lease(&all);

    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    {
        let clients = &clients;
        let tx = &tx;
        // Owned items: a closure over borrowed ones would make the future not `Send`.
        let mut downloads = futures_util::stream::iter(blobs.clone())
            .map(|(d, size, kind)| async move {
                fetch_blob(clients, repo, &d, size, kind, store, tx).await
            })
            .buffer_unordered(cfg.max_concurrent_downloads.max(1));
        loop {
            tokio::select! {
                Some(p) = rx.recv() => progress(p),
                next = downloads.next() => match next {
                    Some(result) => result?,
                    None => break,
                },
            }
        }
    }
    while let Ok(p) = rx.try_recv() {
        progress(p);
    }
    // The config must describe the layers we got.
    let config_data = store.read_blob(&config_digest, MAX_JSON_SIZE)?;
    let config: ImageConfiguration = serde_json::from_slice(&config_data)
        .map_err(|e| ImageError::invalid(format!("config {config_digest}"), e.to_string()))?;
    if config.rootfs().diff_ids().len() != m.layers().len() {
        return Err(ImageError::invalid(
            format!("image {reference}"),
            "the config's diff IDs do not match the layers",
        ));
    }
    store.put(&data)?;
    progress(Progress {
        digest: Some(digest.clone()),
        kind: BlobKind::Manifest,
        status: PullStatus::Done,
        done: data.len() as u64,
        total: data.len() as u64,
    });
    let size = data.len() as u64 + blobs.iter().map(|b| b.1).sum::<u64>();
    Ok(PulledImage {
        name: reference.to_string(),
        manifest: digest,
        index,
        config: config_digest,
        size,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The daemon runs pulls on a multi-threaded runtime: the future must be `Send`.
    #[test]
    fn pull_future_is_send() {
        fn is_send<T: Send>(_: &T) {}
        let dir = tempfile::tempdir().unwrap();
        let store = ContentStore::open(dir.path()).unwrap();
        let reference = crate::normalize("busybox").unwrap();
        let cfg = RegistryConfig::default();
        let fut = pull(&store, &reference, &cfg, |_| {});
        is_send(&fut);
        let digest = Digest::of(b"x");
        let fut = super::super::push::push(&store, &digest, &reference, &cfg, |_| {});
        is_send(&fut);
    }
}
