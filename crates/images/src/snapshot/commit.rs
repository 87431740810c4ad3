//! An active snapshot's upper dir as an OCI layer: a gzip tar with overlay whiteouts (char
//! device 0:0) turned into `.wh.<name>` files and opaque dirs (`trusted.overlay.opaque=y`)
//! into `.wh..wh..opq` entries; hardlinks, symlinks, ownership, modes, xattrs and mtimes kept.

use std::fs;
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use flate2::write::GzEncoder;
use flate2::Compression;
use tar::{EntryType, Header};

use super::Snapshotter;
use crate::content::{BlobInfo, BlobWriter, ContentStore};
use crate::digest::HashingWriter;
use crate::manifest::OCI_LAYER_GZIP;
use crate::unpack::safe_fs::{list_xattrs, xattr_allowed};
use crate::{Digest, ImageError};

/// A layer made from an active snapshot.
#[derive(Debug, Clone)]
pub struct CommittedLayer {
    /// The gzip blob in the content store.
    pub blob: BlobInfo,
    /// Digest of the uncompressed tar.
    pub diff_id: Digest,
    /// Always the OCI gzip layer type.
    pub media_type: String,
}

/// `Write` for a blob being ingested.
struct BlobSink(BlobWriter);

impl Write for BlobSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0
            .write_chunk(buf)
            .map_err(|e| io::Error::other(e.to_string()))?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

pub(crate) fn is_whiteout(meta: &fs::Metadata) -> bool {
    meta.file_type().is_char_device() && meta.rdev() == 0
}

pub(crate) fn is_opaque(path: &Path) -> bool {
    list_xattrs(path)
        .iter()
        .any(|(k, v)| k == "trusted.overlay.opaque" && v == b"y")
}

impl Snapshotter {
    /// Writes active snapshot `key`'s changes as a new gzip layer into `store`.
    pub fn commit(&self, key: &str, store: &ContentStore) -> Result<CommittedLayer, ImageError> {
        let upper = self.mounts(key)?.upper;
        let sink = BlobSink(store.writer(None)?);
        let gz = GzEncoder::new(sink, Compression::default());
        let mut builder = tar::Builder::new(HashingWriter::new(gz));
        builder.follow_symlinks(false);
        let mut links = std::collections::HashMap::new();
        write_dir(&mut builder, &upper, Path::new(""), &mut links)
            .map_err(|e| ImageError::io(format!("write layer of {key}"), e))?;
        let hashing = builder
            .into_inner()
            .map_err(|e| ImageError::io("finish layer tar", e))?;
        let (gz, diff_id, _) = hashing.finish();
        let sink = gz.finish().map_err(|e| ImageError::io("finish gzip", e))?;
        let blob = sink.0.commit()?;
        Ok(CommittedLayer {
            blob,
            diff_id,
            media_type: OCI_LAYER_GZIP.to_string(),
        })
    }
}

fn header_for(meta: &fs::Metadata, kind: EntryType) -> Header {
    let mut h = Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(meta.mode() & 0o7777);
    h.set_uid(meta.uid() as u64);
    h.set_gid(meta.gid() as u64);
    h.set_mtime(meta.mtime().max(0) as u64);
    h.set_size(0);
    h
}

fn write_xattrs<W: Write>(b: &mut tar::Builder<W>, path: &Path) -> io::Result<()> {
    let xattrs: Vec<(String, Vec<u8>)> = list_xattrs(path)
        .into_iter()
        .filter(|(k, _)| xattr_allowed(k))
        .map(|(k, v)| (format!("SCHILY.xattr.{k}"), v))
        .collect();
    if !xattrs.is_empty() {
        b.append_pax_extensions(xattrs.iter().map(|(k, v)| (k.as_str(), v.as_slice())))?;
    }
    Ok(())
}

fn write_dir<W: Write>(
    b: &mut tar::Builder<W>,
    base: &Path,
    rel: &Path,
    links: &mut std::collections::HashMap<(u64, u64), PathBuf>,
) -> io::Result<()> {
    let mut names: Vec<_> = fs::read_dir(base.join(rel))?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<io::Result<_>>()?;
    names.sort();
    for name in names {
        let rel_path = rel.join(&name);
        let full = base.join(&rel_path);
        let meta = fs::symlink_metadata(&full)?;
        let ft = meta.file_type();
        if is_whiteout(&meta) {
            let mut wh = rel.to_path_buf();
            let mut n = b".wh.".to_vec();
            n.extend_from_slice(name.as_bytes());
            wh.push(std::ffi::OsStr::from_bytes(&n));
            let mut h = header_for(&meta, EntryType::Regular);
            h.set_mode(0o644);
            b.append_data(&mut h, &wh, io::empty())?;
        } else if ft.is_dir() {
            write_xattrs(b, &full)?;
            let mut h = header_for(&meta, EntryType::Directory);
            b.append_data(&mut h, &rel_path, io::empty())?;
            if is_opaque(&full) {
                let mut h = header_for(&meta, EntryType::Regular);
                h.set_mode(0o644);
                b.append_data(&mut h, rel_path.join(".wh..wh..opq"), io::empty())?;
            }
            write_dir(b, base, &rel_path, links)?;
        } else if ft.is_symlink() {
            let target = fs::read_link(&full)?;
            write_xattrs(b, &full)?;
            let mut h = header_for(&meta, EntryType::Symlink);
            b.append_link(&mut h, &rel_path, &target)?;
        } else if ft.is_file() {
            let id = (meta.dev(), meta.ino());
            if meta.nlink() > 1 {
                if let Some(first) = links.get(&id) {
                    let mut h = header_for(&meta, EntryType::Link);
                    b.append_link(&mut h, &rel_path, first)?;
                    continue;
                }
                links.insert(id, rel_path.clone());
            }
            write_xattrs(b, &full)?;
            let mut h = header_for(&meta, EntryType::Regular);
            h.set_size(meta.len());
            b.append_data(&mut h, &rel_path, fs::File::open(&full)?)?;
        } else if ft.is_fifo() {
            let mut h = header_for(&meta, EntryType::Fifo);
            b.append_data(&mut h, &rel_path, io::empty())?;
        }
        // Sockets and device nodes made inside a container are not carried into images.
    }
    Ok(())
}
