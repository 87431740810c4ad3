//! Applies one layer tar (plain or gzip) to an empty directory, converting whiteouts to
//! overlay's form (`.wh.name` → char device 0:0, `.wh..wh..opq` → `trusted.overlay.opaque=y`)
//! and rejecting anything that could write outside of it (see `safe_fs`) or create devices.
//! Ownership, modes (setuid included), hardlinks, symlinks, xattrs and mtimes are kept.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Read};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{Mode, SFlag, UtimensatFlags};
use nix::sys::time::TimeSpec;
use nix::unistd::{Gid, Uid};
use tar::EntryType;

use super::safe_fs::{self, clean_path, mkdir_all, open_dir, remove_any, set_xattr};
use super::tar_guard::TarGuard;
use crate::digest::HashingReader;
use crate::{Digest, ImageError};

/// The most entries one layer may have.
pub const MAX_LAYER_ENTRIES: usize = 1_000_000;

const WHITEOUT_PREFIX: &str = ".wh.";
const OPAQUE_MARKER: &str = ".wh..wh..opq";

/// What applying a layer found.
pub(crate) struct Applied {
    /// Digest of the uncompressed tar (the layer's diff ID).
    pub diff_id: Digest,
}

/// Opens a layer blob as an uncompressed tar stream, whatever its compression.
pub(crate) fn decompress<'a, R: Read + 'a>(reader: R) -> Result<Box<dyn Read + 'a>, ImageError> {
    let mut reader = BufReader::with_capacity(128 * 1024, reader);
    let head = reader
        .fill_buf()
        .map_err(|e| ImageError::io("read layer", e))?;
    if head.starts_with(&[0x1f, 0x8b]) {
        Ok(Box::new(flate2::read::MultiGzDecoder::new(reader)))
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        // One zstd frame (what image builders write).
        let decoder = ruzstd::streaming_decoder::StreamingDecoder::new(reader)
            .map_err(|e| ImageError::invalid("zstd layer", e.to_string()))?;
        Ok(Box::new(decoder))
    } else {
        Ok(Box::new(reader))
    }
}

/// Applies the layer read from `blob` to the empty directory `dest`. On error `dest` may hold
/// part of the layer: the caller removes it.
pub(crate) fn apply_layer(blob: impl Read, dest: &Path) -> Result<Applied, ImageError> {
    let hashing = TarGuard::new(HashingReader::new(decompress(blob)?));
    let mut archive = tar::Archive::new(hashing);
    let root = safe_fs::open_root(dest)?;
    let mut dirs: Vec<(PathBuf, i64)> = Vec::new();
    let entries = archive
        .entries()
        .map_err(|e| ImageError::invalid("layer tar", e.to_string()))?;
    for (count, entry) in entries.enumerate() {
        if count >= MAX_LAYER_ENTRIES {
            return Err(ImageError::invalid(
                "layer tar",
                format!("more than {MAX_LAYER_ENTRIES} entries"),
            ));
        }
        let mut entry = entry.map_err(|e| ImageError::invalid("layer tar", e.to_string()))?;
        if let Some(dir) = apply_entry(&root, &mut entry)? {
            dirs.push(dir);
        }
    }
    let hashing = archive.into_inner().into_inner();
    let (diff_id, _) = hashing
        .finish()
        .map_err(|e| ImageError::invalid("layer tar", e.to_string()))?;
    // Directory mtimes last: creating their children changed them.
    for (path, mtime) in dirs.iter().rev() {
        let t = TimeSpec::new(*mtime, 0);
        if let Ok(parent) = open_dir(&root, path.parent().unwrap_or(Path::new(""))) {
            let name = path.file_name().unwrap_or(OsStr::new("."));
            let _ =
                nix::sys::stat::utimensat(&parent, name, &t, &t, UtimensatFlags::NoFollowSymlink);
        }
    }
    Ok(Applied { diff_id })
}

/// Applies one entry; returns a directory whose mtime is to be set at the end.
fn apply_entry<R: Read>(
    root: &OwnedFd,
    entry: &mut tar::Entry<R>,
) -> Result<Option<(PathBuf, i64)>, ImageError> {
    let raw = entry.path_bytes().into_owned();
    let shown = String::from_utf8_lossy(&raw).into_owned();
    let kind = entry.header().entry_type();
    if matches!(kind, EntryType::XGlobalHeader | EntryType::XHeader) {
        return Ok(None);
    }
    let Some(path) = clean_path(&raw)? else {
        // The root directory itself: nothing to create.
        return Ok(None);
    };
    let name = path.file_name().unwrap_or(OsStr::new("")).to_os_string();
    let parent_rel = path.parent().unwrap_or(Path::new("")).to_path_buf();
    let name_bytes = name.as_bytes();

    // Whiteouts.
    if name_bytes == OPAQUE_MARKER.as_bytes() {
        let parent = mkdir_all(root, &parent_rel).map_err(|e| in_entry(e, &shown))?;
        set_xattr(&parent, OsStr::new("."), "trusted.overlay.opaque", b"y")
            .map_err(|e| ImageError::sys(format!("mark {} opaque", parent_rel.display()), e))?;
        return Ok(None);
    }
    if let Some(hidden) = name_bytes.strip_prefix(WHITEOUT_PREFIX.as_bytes()) {
        if hidden.is_empty() || hidden == b"." || hidden == b".." || hidden.contains(&b'/') {
            return Err(ImageError::unsafe_entry(shown, "bad whiteout name"));
        }
        let parent = mkdir_all(root, &parent_rel).map_err(|e| in_entry(e, &shown))?;
        let hidden = OsStr::from_bytes(hidden);
        remove_any(&parent, hidden)?;
        make_whiteout(&parent, hidden)
            .map_err(|e| ImageError::sys(format!("whiteout {shown}"), e))?;
        return Ok(None);
    }

    let header = entry.header().clone();
    let mode = header.mode().map_err(|e| bad(&shown, e))? & 0o7777;
    let uid = header.uid().map_err(|e| bad(&shown, e))?;
    let gid = header.gid().map_err(|e| bad(&shown, e))?;
    let mtime = header.mtime().map_err(|e| bad(&shown, e))? as i64;
    let (uid, gid) = (
        u32::try_from(uid).map_err(|_| ImageError::unsafe_entry(&shown, "uid out of range"))?,
        u32::try_from(gid).map_err(|_| ImageError::unsafe_entry(&shown, "gid out of range"))?,
    );
    let xattrs = read_xattrs(entry, &shown)?;
    let parent = mkdir_all(root, &parent_rel).map_err(|e| in_entry(e, &shown))?;
    let sys = |what: &str, e: Errno| ImageError::sys(format!("{what} {shown}"), e);

    match kind {
        EntryType::Directory => {
            if safe_fs::file_type(&parent, &name) != Some(libc::S_IFDIR) {
                remove_any(&parent, &name)?;
                nix::sys::stat::mkdirat(&parent, name.as_os_str(), Mode::from_bits_truncate(0o700))
                    .map_err(|e| sys("mkdir", e))?;
            }
            finish_metadata(&parent, &name, uid, gid, Some(mode), &xattrs, None, &shown)?;
            return Ok(Some((path, mtime)));
        }
        EntryType::Regular | EntryType::Continuous => {
            remove_any(&parent, &name)?;
            let fd = nix::fcntl::openat(
                &parent,
                name.as_os_str(),
                OFlag::O_WRONLY
                    | OFlag::O_CREAT
                    | OFlag::O_EXCL
                    | OFlag::O_NOFOLLOW
                    | OFlag::O_CLOEXEC,
                Mode::from_bits_truncate(0o600),
            )
            .map_err(|e| sys("create", e))?;
            let mut file = std::fs::File::from(fd);
            std::io::copy(entry, &mut file)
                .map_err(|e| ImageError::invalid(format!("layer entry {shown}"), e.to_string()))?;
        }
        EntryType::Symlink => {
            let target = entry
                .link_name_bytes()
                .ok_or_else(|| ImageError::unsafe_entry(&shown, "symlink without target"))?
                .into_owned();
            remove_any(&parent, &name)?;
            nix::unistd::symlinkat(OsStr::from_bytes(&target), &parent, name.as_os_str())
                .map_err(|e| sys("symlink", e))?;
            finish_metadata(&parent, &name, uid, gid, None, &xattrs, Some(mtime), &shown)?;
            return Ok(None);
        }
        EntryType::Link => {
            let target_raw = entry
                .link_name_bytes()
                .ok_or_else(|| ImageError::unsafe_entry(&shown, "hardlink without target"))?
                .into_owned();
            let target = clean_path(&target_raw)
                .map_err(|_| ImageError::unsafe_entry(&shown, "hardlink target escapes the layer"))?
                .ok_or_else(|| ImageError::unsafe_entry(&shown, "hardlink to the root"))?;
            let tparent = open_dir(root, target.parent().unwrap_or(Path::new("")))
                .map_err(|e| in_entry(e, &shown))?;
            let tname = target.file_name().unwrap_or(OsStr::new(""));
            if safe_fs::file_type(&tparent, tname) == Some(libc::S_IFDIR) {
                return Err(ImageError::unsafe_entry(shown, "hardlink to a directory"));
            }
            remove_any(&parent, &name)?;
            nix::unistd::linkat(&tparent, tname, &parent, name.as_os_str(), AtFlags::empty())
                .map_err(|e| match e {
                    Errno::ENOENT => {
                        ImageError::unsafe_entry(&shown, "hardlink target is not in this layer")
                    }
                    e => sys("link", e),
                })?;
            // A hardlink shares its target's inode and metadata.
            return Ok(None);
        }
        EntryType::Fifo => {
            remove_any(&parent, &name)?;
            nix::unistd::mkfifoat(&parent, name.as_os_str(), Mode::from_bits_truncate(0o600))
                .map_err(|e| sys("mkfifo", e))?;
        }
        EntryType::Char | EntryType::Block => {
            let major = header.device_major().ok().flatten().unwrap_or(1);
            let minor = header.device_minor().ok().flatten().unwrap_or(1);
            if kind == EntryType::Char && major == 0 && minor == 0 {
                remove_any(&parent, &name)?;
                make_whiteout(&parent, &name).map_err(|e| sys("whiteout", e))?;
                return Ok(None);
            }
            return Err(ImageError::unsafe_entry(
                shown,
                "device nodes are not allowed in layers",
            ));
        }
        other => {
            return Err(ImageError::unsafe_entry(
                shown,
                format!("unsupported entry type {other:?}"),
            ));
        }
    }
    finish_metadata(
        &parent,
        &name,
        uid,
        gid,
        Some(mode),
        &xattrs,
        Some(mtime),
        &shown,
    )?;
    Ok(None)
}

/// Names the whole entry in an error about one of its parents.
fn in_entry(e: ImageError, shown: &str) -> ImageError {
    match e {
        ImageError::UnsafeEntry { path, reason } => ImageError::UnsafeEntry {
            path: shown.to_string(),
            reason: format!("{reason} ({path})"),
        },
        e => e,
    }
}

fn bad(shown: &str, e: std::io::Error) -> ImageError {
    ImageError::invalid(format!("layer entry {shown}"), e.to_string())
}

fn make_whiteout(dir: &OwnedFd, name: &OsStr) -> nix::Result<()> {
    nix::sys::stat::mknodat(
        dir,
        name,
        SFlag::S_IFCHR,
        Mode::empty(),
        libc::makedev(0, 0),
    )
}

/// The entry's xattrs from its PAX header (`SCHILY.xattr.*`), filtered.
fn read_xattrs<R: Read>(
    entry: &mut tar::Entry<R>,
    shown: &str,
) -> Result<Vec<(String, Vec<u8>)>, ImageError> {
    let mut out = Vec::new();
    if let Some(exts) = entry.pax_extensions().map_err(|e| bad(shown, e))? {
        for ext in exts {
            let ext = ext.map_err(|e| bad(shown, e))?;
            let Ok(key) = ext.key() else { continue };
            if let Some(name) = key.strip_prefix("SCHILY.xattr.") {
                if safe_fs::xattr_allowed(name) {
                    out.push((name.to_string(), ext.value_bytes().to_vec()));
                }
            }
        }
    }
    if out.len() > 1024 {
        return Err(ImageError::unsafe_entry(shown, "too many xattrs"));
    }
    Ok(out)
}

/// Owner, then mode (chown clears setuid), xattrs and mtime of a just-created entry.
#[allow(clippy::too_many_arguments)]
fn finish_metadata(
    parent: &OwnedFd,
    name: &OsStr,
    uid: u32,
    gid: u32,
    mode: Option<u32>,
    xattrs: &[(String, Vec<u8>)],
    mtime: Option<i64>,
    shown: &str,
) -> Result<(), ImageError> {
    let sys = |what: &str, e: Errno| ImageError::sys(format!("{what} {shown}"), e);
    nix::unistd::fchownat(
        parent,
        name,
        Some(Uid::from_raw(uid)),
        Some(Gid::from_raw(gid)),
        AtFlags::AT_SYMLINK_NOFOLLOW,
    )
    .map_err(|e| sys("chown", e))?;
    if let Some(mode) = mode {
        // The entry was just created by us and is not a symlink.
        nix::sys::stat::fchmodat(
            parent,
            name,
            Mode::from_bits_truncate(mode),
            nix::sys::stat::FchmodatFlags::FollowSymlink,
        )
        .map_err(|e| sys("chmod", e))?;
    }
    for (key, value) in xattrs {
        match set_xattr(parent, name, key, value) {
            Ok(()) => {}
            // user.* xattrs cannot be set on symlinks; file systems without xattrs.
            Err(Errno::EPERM) | Err(Errno::ENOTSUP) if mode.is_none() => {}
            Err(e) => return Err(sys(&format!("set xattr {key} on"), e)),
        }
    }
    if let Some(mtime) = mtime {
        let t = TimeSpec::new(mtime, 0);
        nix::sys::stat::utimensat(parent, name, &t, &t, UtimensatFlags::NoFollowSymlink)
            .map_err(|e| sys("set mtime of", e))?;
    }
    Ok(())
}
