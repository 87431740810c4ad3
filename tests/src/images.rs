//! Test images for the image library: layer tars built entry by entry (raw names, so hostile
//! `../` or absolute paths can be made too), OCI image layouts as directories or tars, and
//! `docker save` archives.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A temp dir named after the test process and a counter.
pub fn scratch(what: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!(
            "berth-img-{what}-{}-{}-",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ))
        .tempdir()
        .expect("temp dir")
}

/// `sha256:<hex>` of `data`.
pub fn sha256(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

/// What a tar entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
    Symlink,
    Hardlink,
    Char,
    Block,
    Fifo,
}

/// One tar entry.
#[derive(Debug, Clone)]
pub struct Entry {
    pub path: Vec<u8>,
    pub kind: Kind,
    pub data: Vec<u8>,
    pub link: Vec<u8>,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub dev: (u32, u32),
    pub xattrs: Vec<(String, Vec<u8>)>,
    /// Size written in the header instead of the data's length (for truncation tests).
    pub declared_size: Option<u64>,
}

impl Entry {
    fn new(path: &str, kind: Kind) -> Entry {
        Entry {
            path: path.as_bytes().to_vec(),
            kind,
            data: Vec::new(),
            link: Vec::new(),
            mode: if kind == Kind::Dir { 0o755 } else { 0o644 },
            uid: 0,
            gid: 0,
            dev: (0, 0),
            xattrs: Vec::new(),
            declared_size: None,
        }
    }
    pub fn file(path: &str, data: &[u8]) -> Entry {
        Entry {
            data: data.to_vec(),
            ..Entry::new(path, Kind::File)
        }
    }
    pub fn dir(path: &str) -> Entry {
        Entry::new(path, Kind::Dir)
    }
    pub fn symlink(path: &str, target: &str) -> Entry {
        Entry {
            link: target.as_bytes().to_vec(),
            mode: 0o777,
            ..Entry::new(path, Kind::Symlink)
        }
    }
    pub fn hardlink(path: &str, target: &str) -> Entry {
        Entry {
            link: target.as_bytes().to_vec(),
            ..Entry::new(path, Kind::Hardlink)
        }
    }
    pub fn device(path: &str, kind: Kind, major: u32, minor: u32) -> Entry {
        Entry {
            dev: (major, minor),
            ..Entry::new(path, kind)
        }
    }
    pub fn mode(mut self, mode: u32) -> Entry {
        self.mode = mode;
        self
    }
    pub fn owner(mut self, uid: u64, gid: u64) -> Entry {
        self.uid = uid;
        self.gid = gid;
        self
    }
    pub fn xattr(mut self, key: &str, value: &[u8]) -> Entry {
        self.xattrs.push((key.to_string(), value.to_vec()));
        self
    }
}

/// A layer tar (uncompressed) of `entries`, names written raw into the headers.
pub fn layer_tar(entries: &[Entry]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        if !e.xattrs.is_empty() {
            let exts: Vec<(String, Vec<u8>)> = e
                .xattrs
                .iter()
                .map(|(k, v)| (format!("SCHILY.xattr.{k}"), v.clone()))
                .collect();
            b.append_pax_extensions(exts.iter().map(|(k, v)| (k.as_str(), v.as_slice())))
                .unwrap();
        }
        let mut h = tar::Header::new_gnu();
        {
            let gnu = h.as_gnu_mut().unwrap();
            assert!(e.path.len() < 100 && e.link.len() < 100, "short names only");
            gnu.name[..e.path.len()].copy_from_slice(&e.path);
            gnu.linkname[..e.link.len()].copy_from_slice(&e.link);
        }
        h.set_entry_type(match e.kind {
            Kind::File => tar::EntryType::Regular,
            Kind::Dir => tar::EntryType::Directory,
            Kind::Symlink => tar::EntryType::Symlink,
            Kind::Hardlink => tar::EntryType::Link,
            Kind::Char => tar::EntryType::Char,
            Kind::Block => tar::EntryType::Block,
            Kind::Fifo => tar::EntryType::Fifo,
        });
        h.set_mode(e.mode);
        h.set_uid(e.uid);
        h.set_gid(e.gid);
        h.set_mtime(1_700_000_000);
        if matches!(e.kind, Kind::Char | Kind::Block) {
            h.set_device_major(e.dev.0).unwrap();
            h.set_device_minor(e.dev.1).unwrap();
        }
        h.set_size(e.declared_size.unwrap_or(e.data.len() as u64));
        h.set_cksum();
        b.append(&h, &e.data[..]).unwrap();
    }
    b.into_inner().unwrap()
}

/// Gzip of `data`.
pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(data).unwrap();
    gz.finish().unwrap()
}

/// One layer of a test image.
#[derive(Debug, Clone)]
pub struct Layer {
    /// The blob as stored (gzip or plain tar).
    pub blob: Vec<u8>,
    /// The uncompressed tar's digest.
    pub diff_id: String,
    pub media_type: String,
}

impl Layer {
    /// A gzip layer of `entries`.
    pub fn gzip(entries: &[Entry]) -> Layer {
        let tar = layer_tar(entries);
        Layer {
            diff_id: sha256(&tar),
            blob: gzip(&tar),
            media_type: "application/vnd.oci.image.layer.v1.tar+gzip".into(),
        }
    }
    /// A zstd layer of `entries` (compressed by the `zstd` command).
    pub fn zstd(entries: &[Entry]) -> Layer {
        use std::process::{Command, Stdio};
        let tar = layer_tar(entries);
        let mut child = Command::new("zstd")
            .args(["-q", "-c", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("zstd (apt-get install zstd)");
        let mut stdin = child.stdin.take().unwrap();
        let input = tar.clone();
        let writer = std::thread::spawn(move || stdin.write_all(&input).unwrap());
        let out = child.wait_with_output().unwrap();
        writer.join().unwrap();
        assert!(out.status.success());
        Layer {
            diff_id: sha256(&tar),
            blob: out.stdout,
            media_type: "application/vnd.oci.image.layer.v1.tar+zstd".into(),
        }
    }

    /// An uncompressed layer of `entries`.
    pub fn plain(entries: &[Entry]) -> Layer {
        let tar = layer_tar(entries);
        Layer {
            diff_id: sha256(&tar),
            blob: tar,
            media_type: "application/vnd.oci.image.layer.v1.tar".into(),
        }
    }
}

/// An image's blobs and documents.
#[derive(Debug, Clone)]
pub struct TestImage {
    pub layers: Vec<Layer>,
    pub config: Vec<u8>,
    pub manifest: Vec<u8>,
}

impl TestImage {
    /// An image of `layers` with a config running `/bin/sh`.
    pub fn new(layers: Vec<Layer>) -> TestImage {
        let config = json!({
            "architecture": "amd64",
            "os": "linux",
            "config": { "Cmd": ["/bin/sh"], "Env": ["PATH=/bin"] },
            "rootfs": {
                "type": "layers",
                "diff_ids": layers.iter().map(|l| l.diff_id.clone()).collect::<Vec<_>>(),
            },
            "history": [],
        });
        let config = serde_json::to_vec(&config).unwrap();
        let mut img = TestImage {
            layers,
            config,
            manifest: Vec::new(),
        };
        img.manifest = img.manifest_with(|_| {});
        img
    }

    /// The manifest JSON, edited by `edit` first.
    pub fn manifest_with(&self, edit: impl FnOnce(&mut Value)) -> Vec<u8> {
        let mut m = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": sha256(&self.config),
                "size": self.config.len(),
            },
            "layers": self.layers.iter().map(|l| json!({
                "mediaType": l.media_type,
                "digest": sha256(&l.blob),
                "size": l.blob.len(),
            })).collect::<Vec<_>>(),
        });
        edit(&mut m);
        serde_json::to_vec(&m).unwrap()
    }

    pub fn manifest_digest(&self) -> String {
        sha256(&self.manifest)
    }

    /// All blobs (layers, config, manifest) as (digest, bytes).
    pub fn blobs(&self) -> Vec<(String, Vec<u8>)> {
        let mut out: Vec<(String, Vec<u8>)> = self
            .layers
            .iter()
            .map(|l| (sha256(&l.blob), l.blob.clone()))
            .collect();
        out.push((sha256(&self.config), self.config.clone()));
        out.push((self.manifest_digest(), self.manifest.clone()));
        out
    }
}

/// The files of an OCI layout holding `images` (with their names as annotations).
pub fn layout_files(images: &[(&TestImage, Option<&str>)]) -> Vec<(String, Vec<u8>)> {
    let mut files = vec![(
        "oci-layout".to_string(),
        br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec(),
    )];
    let mut manifests = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (img, name) in images {
        let mut d = json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": img.manifest_digest(),
            "size": img.manifest.len(),
        });
        if let Some(name) = name {
            d["annotations"] = json!({ "org.opencontainers.image.ref.name": name });
        }
        manifests.push(d);
        for (digest, data) in img.blobs() {
            if seen.insert(digest.clone()) {
                files.push((format!("blobs/sha256/{}", &digest[7..]), data));
            }
        }
    }
    let index = json!({ "schemaVersion": 2, "manifests": manifests });
    files.push((
        "index.json".to_string(),
        serde_json::to_vec(&index).unwrap(),
    ));
    files
}

/// A tar of `files` (path, contents).
pub fn tar_of(files: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, data) in files {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        b.append_data(&mut h, path, &data[..]).unwrap();
    }
    b.into_inner().unwrap()
}

/// Writes `files` under `dir`.
pub fn write_dir(dir: &Path, files: &[(String, Vec<u8>)]) {
    for (path, data) in files {
        let p = dir.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, data).unwrap();
    }
}

/// A `docker save` archive of `img` tagged `tags` (layers as `<n>/layer.tar`, uncompressed
/// or as they are).
pub fn docker_archive(img: &TestImage, tags: &[&str]) -> Vec<u8> {
    let config_name = format!("{}.json", &sha256(&img.config)[7..]);
    let mut files = vec![(config_name.clone(), img.config.clone())];
    let mut layers = Vec::new();
    for (i, l) in img.layers.iter().enumerate() {
        let name = format!("layer{i}/layer.tar");
        files.push((name.clone(), l.blob.clone()));
        layers.push(name);
    }
    // Legacy per-layer metadata files (not part of the image).
    files.push(("layer0/VERSION".into(), b"1.0".to_vec()));
    files.push(("layer0/json".into(), b"{\"id\":\"layer0\"}".to_vec()));
    files.push(("repositories".into(), b"{}".to_vec()));
    let manifest = json!([{ "Config": config_name, "RepoTags": tags, "Layers": layers }]);
    files.push((
        "manifest.json".into(),
        serde_json::to_vec(&manifest).unwrap(),
    ));
    tar_of(&files)
}

/// The busybox test image: three layers (the last one uncompressed) with a whiteout, an
/// opaque dir, a setuid file, a hardlink, symlinks and xattrs.
pub fn busybox_image() -> TestImage {
    busybox_image_with(false)
}

/// [`busybox_image`] with every layer gzipped (registry clients such as skopeo compress plain
/// layers when pushing, which would change the manifest).
pub fn busybox_image_gzip() -> TestImage {
    busybox_image_with(true)
}

fn busybox_image_with(all_gzip: bool) -> TestImage {
    let busybox = std::fs::read(crate::rootfs::BUSYBOX).expect("read /bin/busybox");
    let base = vec![
        Entry::dir("bin/"),
        Entry::file("bin/busybox", &busybox).mode(0o755),
        Entry::symlink("bin/sh", "busybox"),
        Entry::hardlink("bin/cat", "bin/busybox"),
        Entry::symlink("bin/ls", "/bin/busybox"),
        Entry::dir("etc/"),
        Entry::file("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n"),
        Entry::file("etc/old", b"deleted in layer 2\n"),
        Entry::dir("opt/lower/"),
        Entry::file("opt/lower/a", b"a\n"),
        Entry::file("opt/lower/b", b"b\n"),
        Entry::dir("tmp/").mode(0o1777),
    ];
    let second = vec![
        Entry::file("etc/.wh.old", b""),
        Entry::dir("opt/lower/"),
        Entry::file("opt/lower/.wh..wh..opq", b""),
        Entry::file("opt/lower/c", b"c\n"),
        Entry::dir("usr/bin/"),
        Entry::file("usr/bin/suid", b"#!/bin/sh\n")
            .mode(0o4755)
            .owner(0, 0),
        Entry::file("etc/owned", b"x").owner(1000, 1001).mode(0o640),
        Entry::file("etc/tagged", b"x").xattr("user.berth", b"yes"),
    ];
    let third = vec![Entry::file("etc/hostname", b"berth\n")];
    TestImage::new(vec![
        Layer::gzip(&base),
        Layer::gzip(&second),
        if all_gzip {
            Layer::gzip(&third)
        } else {
            Layer::plain(&third)
        },
    ])
}

/// Unmounts a target on drop.
pub struct MountGuard(pub PathBuf);

impl Drop for MountGuard {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
    }
}
