//! Pushing an image from the content store to a registry (OCI distribution protocol): each
//! blob the registry lacks (HEAD) is uploaded in chunks (POST, PATCH..., PUT ?digest=), then
//! the manifests (an index's children first) are PUT byte for byte, so digests are kept.

use std::io::Read;

use reqwest::header::{HeaderName, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, LOCATION};
use reqwest::{Method, Response, StatusCode};

use super::client::Client;
use super::config::RegistryConfig;
use super::pull::{BlobKind, Progress, PullStatus};
use crate::content::{ContentStore, MAX_JSON_SIZE};
use crate::manifest::{self, OCI_MANIFEST};
use crate::{Digest, ImageError, Reference};

/// Bytes sent per PATCH request.
const CHUNK: usize = 8 << 20;

fn location(client: &Client, resp: &Response) -> Result<String, ImageError> {
    let loc = resp
        .headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| client.err("upload without a Location"))?;
    Ok(
        if loc.starts_with("http://") || loc.starts_with("https://") {
            loc.to_string()
        } else {
            format!("{}{loc}", client.endpoint.base)
        },
    )
}

fn expect(
    client: &Client,
    what: &str,
    resp: &Response,
    ok: &[StatusCode],
) -> Result<(), ImageError> {
    if ok.contains(&resp.status()) {
        Ok(())
    } else {
        Err(client.err(format!("{what}: {}", resp.status())))
    }
}

async fn push_blob(
    client: &Client,
    store: &ContentStore,
    repo: &str,
    digest: &Digest,
    kind: BlobKind,
    progress: &mut impl FnMut(Progress),
) -> Result<(), ImageError> {
    let size = store
        .size(digest)
        .ok_or_else(|| ImageError::NotFound(digest.to_string()))?;
    let event = |status, done| Progress {
        digest: Some(digest.clone()),
        kind,
        status,
        done,
        total: size,
    };
    let head = client
        .send(
            Method::HEAD,
            &client.url(&format!("{repo}/blobs/{digest}")),
            &[],
            None,
        )
        .await?;
    if head.status().is_success() {
        progress(event(PullStatus::Exists, size));
        return Ok(());
    }
    let start = client
        .send(
            Method::POST,
            &client.url(&format!("{repo}/blobs/uploads/")),
            &[],
            None,
        )
        .await?;
    expect(client, "start upload", &start, &[StatusCode::ACCEPTED])?;
    let mut url = location(client, &start)?;
    let mut file = store.open_blob(digest)?;
    let mut buf = vec![0u8; CHUNK];
    let mut sent = 0u64;
    loop {
        let n = read_full(&mut file, &mut buf)
            .map_err(|e| ImageError::io(format!("read blob {digest}"), e))?;
        if n == 0 {
            break;
        }
        let range = format!("{}-{}", sent, sent + n as u64 - 1);
        let len = n.to_string();
        let headers: [(HeaderName, &str); 3] = [
            (CONTENT_TYPE, "application/octet-stream"),
            (CONTENT_RANGE, &range),
            (CONTENT_LENGTH, &len),
        ];
        let resp = client
            .send(Method::PATCH, &url, &headers, Some(&buf[..n]))
            .await?;
        expect(
            client,
            "upload chunk",
            &resp,
            &[StatusCode::ACCEPTED, StatusCode::NO_CONTENT],
        )?;
        url = location(client, &resp)?;
        sent += n as u64;
        progress(event(PullStatus::Uploading, sent));
    }
    let sep = if url.contains('?') { '&' } else { '?' };
    let finish = client
        .send(
            Method::PUT,
            &format!("{url}{sep}digest={digest}"),
            &[(CONTENT_LENGTH, "0")],
            Some(&[]),
        )
        .await?;
    expect(
        client,
        "finish upload",
        &finish,
        &[
            StatusCode::CREATED,
            StatusCode::ACCEPTED,
            StatusCode::NO_CONTENT,
        ],
    )?;
    progress(event(PullStatus::Done, size));
    Ok(())
}

fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

async fn put_manifest(
    client: &Client,
    repo: &str,
    object: &str,
    data: &[u8],
) -> Result<(), ImageError> {
    let media_type = serde_json::from_slice::<serde_json::Value>(data)
        .ok()
        .and_then(|v| {
            v.get("mediaType")
                .and_then(|m| m.as_str())
                .map(str::to_string)
        })
        .unwrap_or_else(|| {
            if manifest::is_index(data) {
                manifest::OCI_INDEX.to_string()
            } else {
                OCI_MANIFEST.to_string()
            }
        });
    let resp = client
        .send(
            Method::PUT,
            &client.url(&format!("{repo}/manifests/{object}")),
            &[(CONTENT_TYPE, &media_type)],
            Some(data),
        )
        .await?;
    expect(
        client,
        &format!("put manifest {object}"),
        &resp,
        &[StatusCode::CREATED, StatusCode::ACCEPTED, StatusCode::OK],
    )
}

/// Pushes the image `digest` (a manifest, or an index and its present manifests) from `store`
/// as `reference` (its tag, else its digest) to the registry itself (not a mirror).
pub async fn push(
    store: &ContentStore,
    digest: &Digest,
    reference: &Reference,
    cfg: &RegistryConfig,
    mut progress: impl FnMut(Progress),
) -> Result<(), ImageError> {
    let client = Client::new(cfg.upstream(&reference.registry), &reference.registry)?;
    let repo = reference.repository.as_str();
    let top = store.read_blob(digest, MAX_JSON_SIZE)?;
    let manifests: Vec<(Digest, Vec<u8>)> = if manifest::is_index(&top) {
        let index = manifest::load_index(store, digest)?;
        let mut out = Vec::new();
        for d in index.manifests() {
            let d = Digest::from_oci(d.digest())?;
            if store.exists(&d) {
                out.push((d.clone(), store.read_blob(&d, MAX_JSON_SIZE)?));
            }
        }
        out
    } else {
        Vec::new()
    };
    let leaves: Vec<(Digest, &[u8])> = if manifests.is_empty() {
        vec![(digest.clone(), &top[..])]
    } else {
        manifests.iter().map(|(d, b)| (d.clone(), &b[..])).collect()
    };
    for (d, data) in &leaves {
        let m = manifest::parse_manifest(d, data)?;
        manifest::check_complete(store, &m)?;
        push_blob(
            &client,
            store,
            repo,
            &Digest::from_oci(m.config().digest())?,
            BlobKind::Config,
            &mut progress,
        )
        .await?;
        for l in m.layers() {
            push_blob(
                &client,
                store,
                repo,
                &Digest::from_oci(l.digest())?,
                BlobKind::Layer,
                &mut progress,
            )
            .await?;
        }
        if !manifests.is_empty() {
            put_manifest(&client, repo, d.as_str(), data).await?;
        }
    }
    let object = reference.tag.clone().unwrap_or_else(|| digest.to_string());
    put_manifest(&client, repo, &object, &top).await
}
