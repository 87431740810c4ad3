//! The metadata store: sled, one tree, keys laid out like containerd's buckets.
//!
//! ```text
//! schema_version                        → u32 (big endian)
//! v1/<ns>/namespace                     → berth.v1.Namespace   (the namespace exists)
//! v1/<ns>/containers/<id>               → berth.v1.Container, without its spec
//! v1/<ns>/container_specs/<id>          → the container's OCI spec (JSON)
//! v1/<ns>/container_names/<name>        → <id>
//! v1/<ns>/images/<name>                 → berth.v1.Image
//! v1/<ns>/cri_sandboxes/<id>            → CRI pod sandbox record (daemon/src/cri/records.rs)
//! v1/<ns>/cri_containers/<id>           → CRI container record
//! ```
//! Namespace names, ids and image names never contain `/` where it would be ambiguous: ids and
//! names are validated (see `ids.rs`), image names are the last component and may contain `/`
//! only after the `images/` prefix, which is never scanned past.
//!
//! Values are protobuf-encoded (fields only ever added). Every change that touches more than
//! one key runs in a sled transaction. Flush points: every acknowledged change is flushed to
//! disk before the call returns (`flush`), so kill -9 after an answer loses nothing; sled's
//! log keeps the store consistent for a kill at any other moment. The one exception is an
//! ephemeral container (`run --rm`, `RunOptions.ephemeral`): its record is removed after its
//! first exit anyway, so creating and deleting it is not flushed (sled writes it out within
//! its flush interval); whatever of it survives a crash is swept at start
//! (`sweep_ephemeral`).
//!
//! The spec (several KiB, mostly the seccomp profile) lives under its own key, so a scan of
//! the container records (List, `ps`) reads a few hundred bytes per container. Records from
//! before the split keep the spec inline in `spec_json`; both are read the same way.

mod migrations;

use std::path::Path;

use berth_proto::v1::{Container, ExitInfo, Image, Namespace};
use prost::Message;
use sled::transaction::{ConflictableTransactionError, TransactionError};

pub use migrations::SCHEMA_VERSION;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("metadata store: {0}")]
    Sled(#[from] sled::Error),
    #[error("metadata store: corrupt value at {key}: {source}")]
    Decode {
        key: String,
        source: prost::DecodeError,
    },
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    AlreadyExists(String),
    #[error("{0}")]
    FailedPrecondition(String),
    #[error(
        "metadata store schema {found} is newer than this berthd understands ({SCHEMA_VERSION})"
    )]
    TooNew { found: u32 },
}

pub type Result<T> = std::result::Result<T, StoreError>;

#[derive(Clone)]
pub struct Store {
    db: sled::Db,
}

fn k(parts: &[&str]) -> Vec<u8> {
    let mut key = String::from("v1");
    for p in parts {
        key.push('/');
        key.push_str(p);
    }
    key.into_bytes()
}

fn decode<M: Message + Default>(key: &[u8], value: &[u8]) -> Result<M> {
    M::decode(value).map_err(|source| StoreError::Decode {
        key: String::from_utf8_lossy(key).into_owned(),
        source,
    })
}

/// The record without its spec, and the spec (when the record carries one).
fn split_spec(c: &Container) -> (Vec<u8>, Option<&[u8]>) {
    if c.spec_json.is_empty() {
        return (c.encode_to_vec(), None);
    }
    let record = Container {
        spec_json: Vec::new(),
        ..c.clone()
    };
    (record.encode_to_vec(), Some(c.spec_json.as_slice()))
}

/// Removed after its first exit (`run --rm`): its record is not worth a flush.
pub fn is_ephemeral(c: &Container) -> bool {
    removed_after_exit(c.options.as_ref())
}

/// Whether a container with these options is removed after its first exit (`run --rm`).
pub fn removed_after_exit(opts: Option<&berth_proto::v1::RunOptions>) -> bool {
    opts.is_some_and(|o| o.ephemeral || o.auto_remove)
}

fn tx_err(e: TransactionError<StoreError>) -> StoreError {
    match e {
        TransactionError::Abort(e) => e,
        TransactionError::Storage(e) => StoreError::Sled(e),
    }
}

impl Store {
    /// Opens (or creates) the store and runs pending migrations.
    pub fn open(dir: &Path) -> Result<Store> {
        let db = sled::Config::new().path(dir).open()?;
        let store = Store { db };
        migrations::run(&store.db)?;
        store.ensure_namespace(berth_proto::v1::DEFAULT_NAMESPACE)?;
        Ok(store)
    }

    pub fn flush(&self) -> Result<()> {
        self.db.flush()?;
        Ok(())
    }

    // Namespaces.

    pub fn ensure_namespace(&self, ns: &str) -> Result<()> {
        let key = k(&[ns, "namespace"]);
        if self.db.get(&key)?.is_none() {
            let rec = Namespace {
                name: ns.to_string(),
                labels: Default::default(),
            };
            self.db
                .compare_and_swap(&key, None::<&[u8]>, Some(rec.encode_to_vec()))?
                .ok();
            self.flush()?;
        }
        Ok(())
    }

    pub fn namespace(&self, ns: &str) -> Result<Option<Namespace>> {
        let key = k(&[ns, "namespace"]);
        self.db.get(&key)?.map(|v| decode(&key, &v)).transpose()
    }

    pub fn put_namespace(&self, rec: &Namespace) -> Result<()> {
        self.db
            .insert(k(&[&rec.name, "namespace"]), rec.encode_to_vec())?;
        self.flush()
    }

    pub fn namespaces(&self) -> Result<Vec<Namespace>> {
        let mut out = Vec::new();
        for item in self.db.scan_prefix(b"v1/") {
            let (key, value) = item?;
            if key.ends_with(b"/namespace") && key.iter().filter(|&&b| b == b'/').count() == 2 {
                out.push(decode(&key, &value)?);
            }
        }
        Ok(out)
    }

    /// Deletes an empty namespace.
    pub fn delete_namespace(&self, ns: &str) -> Result<()> {
        if self.namespace(ns)?.is_none() {
            return Err(StoreError::NotFound(format!(
                "namespace {ns:?} does not exist"
            )));
        }
        let prefix = k(&[ns, ""]);
        let only_record = self
            .db
            .scan_prefix(&prefix)
            .keys()
            .all(|key| key.map(|key| key.ends_with(b"/namespace")).unwrap_or(false));
        if !only_record {
            return Err(StoreError::FailedPrecondition(format!(
                "namespace {ns:?} is not empty: remove its containers and images first"
            )));
        }
        self.db.remove(k(&[ns, "namespace"]))?;
        self.flush()
    }

    // Containers.

    /// Inserts a new container and its name atomically.
    pub fn create_container(&self, ns: &str, c: &Container) -> Result<()> {
        let key = k(&[ns, "containers", &c.id]);
        let spec_key = k(&[ns, "container_specs", &c.id]);
        let name_key = (!c.name.is_empty()).then(|| k(&[ns, "container_names", &c.name]));
        let (value, spec) = split_spec(c);
        self.db
            .transaction(|tx| {
                if tx.get(&key)?.is_some() {
                    return Err(ConflictableTransactionError::Abort(
                        StoreError::AlreadyExists(format!("container {:?} already exists", c.id)),
                    ));
                }
                if let Some(name_key) = &name_key {
                    if tx.get(name_key)?.is_some() {
                        return Err(ConflictableTransactionError::Abort(
                            StoreError::AlreadyExists(format!(
                                "the name {:?} is already in use",
                                c.name
                            )),
                        ));
                    }
                    tx.insert(name_key.as_slice(), c.id.as_bytes())?;
                }
                tx.insert(key.as_slice(), value.as_slice())?;
                if let Some(spec) = spec {
                    tx.insert(spec_key.as_slice(), spec)?;
                }
                Ok(())
            })
            .map_err(tx_err)?;
        self.flush_unless_ephemeral(c)
    }

    /// Replaces a container's record; its spec too when `spec_json` is set (a record from
    /// `containers()` has none and leaves the stored spec alone).
    pub fn put_container(&self, ns: &str, c: &Container) -> Result<()> {
        let key = k(&[ns, "containers", &c.id]);
        let spec_key = k(&[ns, "container_specs", &c.id]);
        let (value, spec) = split_spec(c);
        self.db
            .transaction(|tx| {
                tx.insert(key.as_slice(), value.as_slice())?;
                if let Some(spec) = spec {
                    tx.insert(spec_key.as_slice(), spec)?;
                }
                Ok::<(), ConflictableTransactionError<StoreError>>(())
            })
            .map_err(tx_err)?;
        self.flush_unless_ephemeral(c)
    }

    /// A container with its spec.
    pub fn container(&self, ns: &str, id: &str) -> Result<Option<Container>> {
        let key = k(&[ns, "containers", id]);
        self.db
            .get(&key)?
            .map(|v| self.with_spec(ns, decode(&key, &v)?))
            .transpose()
    }

    fn with_spec(&self, ns: &str, mut c: Container) -> Result<Container> {
        if c.spec_json.is_empty() {
            if let Some(spec) = self.db.get(k(&[ns, "container_specs", &c.id]))? {
                c.spec_json = spec.to_vec();
            }
        }
        Ok(c)
    }

    fn flush_unless_ephemeral(&self, c: &Container) -> Result<()> {
        if is_ephemeral(c) {
            return Ok(());
        }
        self.flush()
    }

    /// By id, then by name.
    pub fn find_container(&self, ns: &str, id_or_name: &str) -> Result<Container> {
        if let Some(c) = self.container(ns, id_or_name)? {
            return Ok(c);
        }
        if let Some(id) = self.db.get(k(&[ns, "container_names", id_or_name]))? {
            let id = String::from_utf8_lossy(&id).into_owned();
            if let Some(c) = self.container(ns, &id)? {
                return Ok(c);
            }
        }
        // A unique id prefix (like docker's short ids).
        let prefix = k(&[ns, "containers", id_or_name]);
        let mut found = None;
        for item in self.db.scan_prefix(&prefix) {
            let (key, value) = item?;
            if found.is_some() {
                return Err(StoreError::FailedPrecondition(format!(
                    "{id_or_name:?} matches more than one container: give more of the id"
                )));
            }
            found = Some(decode(&key, &value)?);
        }
        let found = found.ok_or_else(|| {
            StoreError::NotFound(format!("container {id_or_name:?} does not exist"))
        })?;
        self.with_spec(ns, found)
    }

    /// The container records of a namespace, without their specs (`spec_json` empty).
    pub fn containers(&self, ns: &str) -> Result<Vec<Container>> {
        let prefix = k(&[ns, "containers", ""]);
        self.db
            .scan_prefix(&prefix)
            .map(|item| {
                let (key, value) = item?;
                let mut c: Container = decode(&key, &value)?;
                c.spec_json = Vec::new();
                Ok(c)
            })
            .collect()
    }

    /// Records the last exit of a container's init (read, change, write in one transaction, so
    /// a concurrent label update is not lost). A container removed meanwhile is left alone.
    pub fn set_last_exit(
        &self,
        ns: &str,
        id: &str,
        exit: &ExitInfo,
        status: &str,
        reason: &str,
    ) -> Result<()> {
        let key = k(&[ns, "containers", id]);
        let ephemeral = self
            .db
            .transaction(|tx| {
                let Some(value) = tx.get(&key)? else {
                    return Ok(true);
                };
                let mut c: Container =
                    decode(&key, &value).map_err(ConflictableTransactionError::Abort)?;
                c.last_exit = Some(*exit);
                c.last_exit_status = status.to_string();
                c.last_exit_reason = reason.to_string();
                tx.insert(key.as_slice(), c.encode_to_vec())?;
                Ok(is_ephemeral(&c))
            })
            .map_err(tx_err)?;
        // Like its creation: an --rm record is about to go, its exit need not be synced.
        if ephemeral {
            return Ok(());
        }
        self.flush()
    }

    pub fn delete_container(&self, ns: &str, c: &Container) -> Result<()> {
        let key = k(&[ns, "containers", &c.id]);
        let spec_key = k(&[ns, "container_specs", &c.id]);
        let name_key = (!c.name.is_empty()).then(|| k(&[ns, "container_names", &c.name]));
        self.db
            .transaction(|tx| {
                tx.remove(key.as_slice())?;
                tx.remove(spec_key.as_slice())?;
                if let Some(name_key) = &name_key {
                    tx.remove(name_key.as_slice())?;
                }
                Ok::<(), ConflictableTransactionError<StoreError>>(())
            })
            .map_err(tx_err)?;
        self.flush_unless_ephemeral(c)
    }

    // Records of other kinds (CRI): protobuf values under v1/<ns>/<kind>/<id>.

    pub fn put_record<M: Message>(&self, ns: &str, kind: &str, id: &str, m: &M) -> Result<()> {
        self.db.insert(k(&[ns, kind, id]), m.encode_to_vec())?;
        self.flush()
    }

    pub fn record<M: Message + Default>(
        &self,
        ns: &str,
        kind: &str,
        id: &str,
    ) -> Result<Option<M>> {
        let key = k(&[ns, kind, id]);
        self.db.get(&key)?.map(|v| decode(&key, &v)).transpose()
    }

    pub fn records<M: Message + Default>(&self, ns: &str, kind: &str) -> Result<Vec<M>> {
        let prefix = k(&[ns, kind, ""]);
        self.db
            .scan_prefix(&prefix)
            .map(|item| {
                let (key, value) = item?;
                decode(&key, &value)
            })
            .collect()
    }

    pub fn delete_record(&self, ns: &str, kind: &str, id: &str) -> Result<()> {
        self.db.remove(k(&[ns, kind, id]))?;
        self.flush()
    }

    // Images.

    pub fn put_image(&self, ns: &str, img: &Image) -> Result<()> {
        self.db
            .insert(k(&[ns, "images", &img.name]), img.encode_to_vec())?;
        self.flush()
    }

    pub fn image(&self, ns: &str, name: &str) -> Result<Option<Image>> {
        let key = k(&[ns, "images", name]);
        self.db.get(&key)?.map(|v| decode(&key, &v)).transpose()
    }

    pub fn images(&self, ns: &str) -> Result<Vec<Image>> {
        let prefix = k(&[ns, "images", ""]);
        self.db
            .scan_prefix(&prefix)
            .map(|item| {
                let (key, value) = item?;
                decode(&key, &value)
            })
            .collect()
    }

    /// Every image record of every namespace (for garbage collection).
    pub fn all_images(&self) -> Result<Vec<Image>> {
        let mut out = Vec::new();
        for ns in self.namespaces()? {
            out.extend(self.images(&ns.name)?);
        }
        Ok(out)
    }

    pub fn delete_image(&self, ns: &str, name: &str) -> Result<bool> {
        let existed = self.db.remove(k(&[ns, "images", name]))?.is_some();
        self.flush()?;
        Ok(existed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn container(id: &str, name: &str) -> Container {
        Container {
            id: id.into(),
            name: name.into(),
            ..Default::default()
        }
    }

    #[test]
    fn names_are_unique_per_namespace_and_namespaces_isolate() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        s.ensure_namespace("k8s.io").unwrap();
        s.create_container("default", &container("a", "web"))
            .unwrap();
        assert!(matches!(
            s.create_container("default", &container("b", "web")),
            Err(StoreError::AlreadyExists(_))
        ));
        assert!(matches!(
            s.create_container("default", &container("a", "")),
            Err(StoreError::AlreadyExists(_))
        ));
        s.create_container("k8s.io", &container("b", "web"))
            .unwrap();
        assert_eq!(s.find_container("default", "web").unwrap().id, "a");
        s.create_container("default", &container("abc1", ""))
            .unwrap();
        s.create_container("default", &container("abd2", ""))
            .unwrap();
        assert_eq!(s.find_container("default", "abc").unwrap().id, "abc1");
        assert!(matches!(
            s.find_container("default", "ab"),
            Err(StoreError::FailedPrecondition(_))
        ));
        assert!(matches!(
            s.find_container("default", "zz"),
            Err(StoreError::NotFound(_))
        ));
        for id in ["abc1", "abd2"] {
            let c = s.find_container("default", id).unwrap();
            s.delete_container("default", &c).unwrap();
        }
        assert_eq!(s.containers("k8s.io").unwrap().len(), 1);
        assert!(matches!(
            s.delete_namespace("k8s.io"),
            Err(StoreError::FailedPrecondition(_))
        ));
        let b = s.find_container("k8s.io", "b").unwrap();
        s.delete_container("k8s.io", &b).unwrap();
        s.delete_namespace("k8s.io").unwrap();
        let names: Vec<_> = s
            .namespaces()
            .unwrap()
            .into_iter()
            .map(|n| n.name)
            .collect();
        assert_eq!(names, vec!["default".to_string()]);
        // The name is free again after delete.
        let a = s.find_container("default", "a").unwrap();
        s.delete_container("default", &a).unwrap();
        s.create_container("default", &container("c", "web"))
            .unwrap();
    }

    #[test]
    fn the_last_exit_is_kept_with_the_rest_of_the_record() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        let mut c = container("a", "x");
        c.labels.insert("k".into(), "v".into());
        s.create_container("default", &c).unwrap();
        let exit = ExitInfo {
            code: 9,
            pid: 42,
            ..Default::default()
        };
        s.set_last_exit("default", "a", &exit, "exited", "shim died")
            .unwrap();
        let got = s.find_container("default", "a").unwrap();
        assert_eq!(got.last_exit, Some(exit));
        assert_eq!(got.last_exit_status, "exited");
        assert_eq!(got.last_exit_reason, "shim died");
        assert_eq!(got.labels["k"], "v");
        // A removed container stays removed.
        s.set_last_exit("default", "gone", &exit, "exited", "")
            .unwrap();
        assert!(s.container("default", "gone").unwrap().is_none());
    }

    #[test]
    fn reopening_keeps_everything() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = Store::open(dir.path()).unwrap();
            s.create_container("default", &container("a", "x")).unwrap();
        }
        let s = reopen(dir.path());
        assert_eq!(s.find_container("default", "x").unwrap().id, "a");
    }

    /// sled's flusher thread may still hold the dropped database (and its file lock) for a
    /// moment; a new process (a restarted berthd) never meets that.
    fn reopen(dir: &std::path::Path) -> Store {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            match Store::open(dir) {
                Ok(s) => return s,
                Err(e) if std::time::Instant::now() < deadline => {
                    assert!(e.to_string().contains("lock"), "{e}");
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                Err(e) => panic!("reopening the store: {e}"),
            }
        }
    }
}
