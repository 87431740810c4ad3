//! The content store: immutable blobs addressed by digest at `<root>/blobs/sha256/<hex>`.
//!
//! Writes go to a temp file under `<root>/ingest/`, are fsynced, checked against the expected
//! digest and size, then renamed into place; concurrent ingests of one blob are harmless (the
//! rename is atomic and the content identical). Reads of JSON documents are bounded.

use std::collections::{HashMap, HashSet};
use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use sha2::{Digest as _, Sha256};

use crate::{Digest, ImageError};

/// The largest JSON document (manifest, index, config) read into memory.
pub const MAX_JSON_SIZE: u64 = 8 << 20;

static INGEST_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A blob's digest and size.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BlobInfo {
    pub digest: Digest,
    pub size: u64,
}

/// The content store; cheap to clone (clones share leases).
#[derive(Debug, Clone)]
pub struct ContentStore {
    root: PathBuf,
    leases: Arc<Mutex<HashMap<Digest, usize>>>,
}

/// Protects blobs from [`ContentStore::gc`] while it lives.
#[derive(Debug)]
pub struct Lease {
    leases: Arc<Mutex<HashMap<Digest, usize>>>,
    digests: Vec<Digest>,
}

impl Lease {
    /// Adds a digest to this lease.
    pub fn add(&mut self, digest: &Digest) {
        if let Ok(mut map) = self.leases.lock() {
            *map.entry(digest.clone()).or_default() += 1;
            self.digests.push(digest.clone());
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Ok(mut map) = self.leases.lock() {
            for d in &self.digests {
                if let Some(n) = map.get_mut(d) {
                    *n -= 1;
                    if *n == 0 {
                        map.remove(d);
                    }
                }
            }
        }
    }
}

/// What [`ContentStore::gc`] removed.
#[derive(Debug, Default, Clone)]
pub struct GcReport {
    pub removed: Vec<Digest>,
    pub freed_bytes: u64,
}

impl ContentStore {
    /// Opens (creating) a content store at `root`.
    pub fn open(root: &Path) -> Result<ContentStore, ImageError> {
        for dir in [root.join("blobs/sha256"), root.join("ingest")] {
            fs::create_dir_all(&dir).map_err(|e| ImageError::io_path("create", &dir, e))?;
        }
        Ok(ContentStore {
            root: root.to_path_buf(),
            leases: Arc::default(),
        })
    }

    /// The store's root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where a blob lives (whether or not it exists).
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.root.join("blobs/sha256").join(digest.hex())
    }

    /// Whether the blob is present.
    pub fn exists(&self, digest: &Digest) -> bool {
        self.blob_path(digest).is_file()
    }

    /// The blob's size, if present.
    pub fn size(&self, digest: &Digest) -> Option<u64> {
        fs::metadata(self.blob_path(digest)).ok().map(|m| m.len())
    }

    /// Opens a blob for reading.
    pub fn open_blob(&self, digest: &Digest) -> Result<File, ImageError> {
        File::open(self.blob_path(digest)).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => ImageError::NotFound(digest.to_string()),
            _ => ImageError::io(format!("open blob {digest}"), e),
        })
    }

    /// Reads a whole blob of at most `max_size` bytes, verifying its digest.
    pub fn read_blob(&self, digest: &Digest, max_size: u64) -> Result<Vec<u8>, ImageError> {
        let file = self.open_blob(digest)?;
        let mut data = Vec::new();
        file.take(max_size + 1)
            .read_to_end(&mut data)
            .map_err(|e| ImageError::io(format!("read blob {digest}"), e))?;
        if data.len() as u64 > max_size {
            return Err(ImageError::invalid(
                format!("blob {digest}"),
                format!("larger than the limit of {max_size} bytes"),
            ));
        }
        let actual = Digest::of(&data);
        if &actual != digest {
            return Err(ImageError::Mismatch {
                expected: digest.to_string(),
                detail: format!("stored content hashes to {actual}"),
            });
        }
        Ok(data)
    }

    /// Starts writing a blob; `expected` digest and size are checked on commit (and the size
    /// while writing).
    pub fn writer(&self, expected: Option<(&Digest, u64)>) -> Result<BlobWriter, ImageError> {
        let name = format!(
            "{}-{}-{}",
            std::process::id(),
            INGEST_COUNTER.fetch_add(1, Ordering::Relaxed),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos())
        );
        let tmp = self.root.join("ingest").join(name);
        let file = File::options()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(|e| ImageError::io_path("create", &tmp, e))?;
        Ok(BlobWriter {
            store: self.clone(),
            file: Some(file),
            tmp,
            hasher: Sha256::new(),
            count: 0,
            expected: expected.map(|(d, s)| (d.clone(), s)),
        })
    }

    /// Writes a blob from a reader, verifying `expected` digest and size if given.
    pub fn ingest(
        &self,
        reader: impl Read,
        expected: Option<(&Digest, u64)>,
    ) -> Result<BlobInfo, ImageError> {
        self.ingest_new(reader, expected).map(|(info, _)| info)
    }

    /// [`ContentStore::ingest`], also telling whether the blob was new.
    pub fn ingest_new(
        &self,
        mut reader: impl Read,
        expected: Option<(&Digest, u64)>,
    ) -> Result<(BlobInfo, bool), ImageError> {
        let mut writer = self.writer(expected)?;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(ImageError::io("read content to ingest", e)),
            };
            writer.write_chunk(&buf[..n])?;
        }
        writer.commit_new()
    }

    /// Stores bytes (e.g. a JSON document) and returns their digest.
    pub fn put(&self, data: &[u8]) -> Result<BlobInfo, ImageError> {
        let digest = Digest::of(data);
        if self.size(&digest) == Some(data.len() as u64) {
            return Ok(BlobInfo {
                digest,
                size: data.len() as u64,
            });
        }
        self.ingest(data, Some((&digest, data.len() as u64)))
    }

    /// Removes a blob (a missing blob is fine).
    pub fn delete(&self, digest: &Digest) -> Result<(), ImageError> {
        match fs::remove_file(self.blob_path(digest)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(ImageError::io(format!("delete blob {digest}"), e)),
        }
    }

    /// All blobs with their sizes.
    pub fn list(&self) -> Result<Vec<BlobInfo>, ImageError> {
        let dir = self.root.join("blobs/sha256");
        let mut out = Vec::new();
        for entry in fs::read_dir(&dir).map_err(|e| ImageError::io_path("list", &dir, e))? {
            let entry = entry.map_err(|e| ImageError::io_path("list", &dir, e))?;
            let name = entry.file_name();
            let Some(digest) = name
                .to_str()
                .and_then(|n| Digest::parse(&format!("sha256:{n}")).ok())
            else {
                continue;
            };
            let size = entry.metadata().map(|m| m.len()).unwrap_or(0);
            out.push(BlobInfo { digest, size });
        }
        out.sort_by(|a, b| a.digest.cmp(&b.digest));
        Ok(out)
    }

    /// Bytes of all blobs.
    pub fn disk_usage(&self) -> Result<u64, ImageError> {
        Ok(self.list()?.iter().map(|b| b.size).sum())
    }

    /// Protects `digests` (present or still to be written) from gc until the lease is dropped.
    pub fn lease(&self, digests: &[Digest]) -> Lease {
        let mut lease = Lease {
            leases: self.leases.clone(),
            digests: Vec::new(),
        };
        for d in digests {
            lease.add(d);
        }
        lease
    }

    fn leased(&self) -> HashSet<Digest> {
        self.leases
            .lock()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// Removes every blob not reachable from `referenced` (manifests or indexes: their configs,
    /// layers and child manifests are kept) and not leased, and stale ingest files of this
    /// store older than an hour.
    pub fn gc(&self, referenced: &[Digest]) -> Result<GcReport, ImageError> {
        let mut keep = self.leased();
        let mut stack: Vec<Digest> = referenced.to_vec();
        let mut seen = HashSet::new();
        while let Some(d) = stack.pop() {
            if !seen.insert(d.clone()) {
                continue;
            }
            keep.insert(d.clone());
            stack.extend(crate::manifest::children(self, &d)?);
        }
        let mut report = GcReport::default();
        for blob in self.list()? {
            if !keep.contains(&blob.digest) {
                self.delete(&blob.digest)?;
                report.freed_bytes += blob.size;
                report.removed.push(blob.digest);
            }
        }
        let ingest = self.root.join("ingest");
        if let Ok(entries) = fs::read_dir(&ingest) {
            for entry in entries.flatten() {
                let old = entry
                    .metadata()
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.elapsed().ok())
                    .is_some_and(|age| age.as_secs() > 3600);
                if old {
                    let _ = fs::remove_file(entry.path());
                }
            }
        }
        Ok(report)
    }
}

/// A blob being written; removed unless [`BlobWriter::commit`] succeeds.
pub struct BlobWriter {
    store: ContentStore,
    file: Option<File>,
    tmp: PathBuf,
    hasher: Sha256,
    count: u64,
    expected: Option<(Digest, u64)>,
}

impl BlobWriter {
    /// Appends bytes; fails as soon as more than the expected size arrives.
    pub fn write_chunk(&mut self, data: &[u8]) -> Result<(), ImageError> {
        self.count += data.len() as u64;
        if let Some((digest, size)) = &self.expected {
            if self.count > *size {
                return Err(ImageError::Mismatch {
                    expected: digest.to_string(),
                    detail: format!("more than the declared {size} bytes"),
                });
            }
        }
        self.hasher.update(data);
        let file = self
            .file
            .as_mut()
            .ok_or_else(|| ImageError::invalid("blob writer", "already committed"))?;
        file.write_all(data)
            .map_err(|e| ImageError::io_path("write", &self.tmp, e))
    }

    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.count
    }

    /// Syncs, verifies and moves the blob into place.
    pub fn commit(self) -> Result<BlobInfo, ImageError> {
        self.commit_new().map(|(info, _)| info)
    }

    /// [`BlobWriter::commit`], also telling whether the blob was new (`false`: it was already
    /// stored, and is left as it was).
    pub fn commit_new(mut self) -> Result<(BlobInfo, bool), ImageError> {
        let file = self
            .file
            .take()
            .ok_or_else(|| ImageError::invalid("blob writer", "already committed"))?;
        file.sync_all()
            .map_err(|e| ImageError::io_path("fsync", &self.tmp, e))?;
        drop(file);
        let digest = Digest::from_hasher(std::mem::take(&mut self.hasher));
        if let Some((want, size)) = &self.expected {
            if self.count != *size {
                return Err(ImageError::Mismatch {
                    expected: want.to_string(),
                    detail: format!("got {} bytes, declared {size}", self.count),
                });
            }
            if &digest != want {
                return Err(ImageError::Mismatch {
                    expected: want.to_string(),
                    detail: format!("content hashes to {digest}"),
                });
            }
        }
        let dest = self.store.blob_path(&digest);
        let info = BlobInfo {
            digest,
            size: self.count,
        };
        // Replacing an existing copy is harmless (same verified content) and repairs a
        // damaged one.
        let existed = fs::symlink_metadata(&dest).is_ok();
        fs::rename(&self.tmp, &dest).map_err(|e| ImageError::io_path("rename", &dest, e))?;
        if let Some(dir) = dest.parent() {
            if let Ok(d) = File::open(dir) {
                let _ = d.sync_all();
            }
        }
        Ok((info, !existed))
    }
}

impl Drop for BlobWriter {
    fn drop(&mut self) {
        // After a successful commit the temp file was renamed away: this is then a no-op.
        let _ = fs::remove_file(&self.tmp);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ingest_verifies_digest_and_size() {
        let dir = tempfile::tempdir().unwrap();
        let store = ContentStore::open(dir.path()).unwrap();
        let good = Digest::of(b"hello");
        let info = store.ingest(&b"hello"[..], Some((&good, 5))).unwrap();
        assert_eq!(info.digest, good);
        assert!(store.exists(&good));
        assert_eq!(store.read_blob(&good, 5).unwrap(), b"hello");
        assert!(store.read_blob(&good, 4).is_err());
        // Wrong content, short and long content: rejected, nothing left behind.
        let other = Digest::of(b"world");
        assert!(matches!(
            store.ingest(&b"hellO"[..], Some((&other, 5))),
            Err(ImageError::Mismatch { .. })
        ));
        assert!(store.ingest(&b"wor"[..], Some((&other, 5))).is_err());
        assert!(store.ingest(&b"worldworld"[..], Some((&other, 5))).is_err());
        assert!(!store.exists(&other));
        assert_eq!(fs::read_dir(dir.path().join("ingest")).unwrap().count(), 0);
        // A stored blob corrupted on disk is caught when read.
        fs::write(store.blob_path(&good), b"HELLO").unwrap();
        assert!(store.read_blob(&good, 100).is_err());
    }

    #[test]
    fn concurrent_ingest_of_one_blob() {
        let dir = tempfile::tempdir().unwrap();
        let store = ContentStore::open(dir.path()).unwrap();
        let data = vec![7u8; 300_000];
        let digest = Digest::of(&data);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    store
                        .ingest(&data[..], Some((&digest, data.len() as u64)))
                        .unwrap()
                });
            }
        });
        assert_eq!(store.list().unwrap().len(), 1);
        assert_eq!(store.read_blob(&digest, 1 << 20).unwrap(), data);
    }

    #[test]
    fn gc_keeps_leased_and_referenced() {
        let dir = tempfile::tempdir().unwrap();
        let store = ContentStore::open(dir.path()).unwrap();
        let a = store.put(b"a").unwrap().digest;
        let b = store.put(b"b").unwrap().digest;
        let c = store.put(b"c").unwrap().digest;
        let lease = store.lease(std::slice::from_ref(&b));
        let report = store.gc(std::slice::from_ref(&a)).unwrap();
        assert_eq!(report.removed, vec![c.clone()]);
        assert!(store.exists(&a) && store.exists(&b) && !store.exists(&c));
        drop(lease);
        store.gc(std::slice::from_ref(&a)).unwrap();
        assert!(!store.exists(&b));
    }
}
