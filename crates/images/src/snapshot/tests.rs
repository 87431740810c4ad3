//! Whiteout conversions both ways: an upper dir with overlay whiteouts and an opaque dir is
//! committed to a layer with `.wh.` entries, which applies back to the overlay form.

use std::io::Read;
use std::os::unix::fs::{FileTypeExt, MetadataExt};

use super::commit::is_opaque;
use super::Snapshotter;
use crate::content::ContentStore;
use crate::unpack::apply::{apply_layer, decompress};
use crate::unpack::safe_fs::{open_root, set_xattr};

#[test]
fn whiteouts_convert_to_layer_entries_and_back() {
    let dir = tempfile::tempdir().unwrap();
    let store = ContentStore::open(&dir.path().join("content")).unwrap();
    let snaps = Snapshotter::open(&dir.path().join("snaps")).unwrap();
    let m = snaps.prepare("k", "").unwrap();
    let up = &m.upper;
    std::fs::create_dir_all(up.join("etc")).unwrap();
    nix::sys::stat::mknod(
        &up.join("etc/gone"),
        nix::sys::stat::SFlag::S_IFCHR,
        nix::sys::stat::Mode::empty(),
        0,
    )
    .unwrap();
    std::fs::create_dir(up.join("opaque")).unwrap();
    std::fs::write(up.join("opaque/kept"), "k").unwrap();
    let root = open_root(up).unwrap();
    set_xattr(&root, "opaque".as_ref(), "trusted.overlay.opaque", b"y").unwrap();
    set_xattr(&root, "opaque".as_ref(), "trusted.overlay.origin", b"x").unwrap();

    let layer = snaps.commit("k", &store).unwrap();
    let blob = store.open_blob(&layer.blob.digest).unwrap();
    let mut tar = Vec::new();
    decompress(blob).unwrap().read_to_end(&mut tar).unwrap();
    assert_eq!(crate::Digest::of(&tar), layer.diff_id);
    let mut names = Vec::new();
    for e in tar::Archive::new(&tar[..]).entries().unwrap() {
        let mut e = e.unwrap();
        let name = e.path().unwrap().display().to_string();
        if let Some(exts) = e.pax_extensions().unwrap() {
            for ext in exts {
                let key = ext.unwrap().key().unwrap().to_string();
                assert!(!key.contains("trusted.overlay"), "{key} exported");
            }
        }
        names.push(name);
    }
    assert_eq!(
        names,
        [
            "etc",
            "etc/.wh.gone",
            "opaque",
            "opaque/.wh..wh..opq",
            "opaque/kept"
        ]
    );

    let back = dir.path().join("back");
    std::fs::create_dir(&back).unwrap();
    let applied = apply_layer(store.open_blob(&layer.blob.digest).unwrap(), &back).unwrap();
    assert_eq!(applied.diff_id, layer.diff_id);
    let gone = std::fs::symlink_metadata(back.join("etc/gone")).unwrap();
    assert!(gone.file_type().is_char_device());
    assert_eq!(gone.rdev(), 0);
    assert!(is_opaque(&back.join("opaque")));
    assert_eq!(
        std::fs::read_to_string(back.join("opaque/kept")).unwrap(),
        "k"
    );
    assert!(!back.join("opaque/.wh..wh..opq").exists());
    snaps.remove("k").unwrap();
}

/// Active snapshots live in their own records: reopening keeps them (volatile or synced),
/// never hands out one of their ids again, and drops directories whose record is gone.
#[test]
fn active_records_survive_reopen_and_leftovers_go() {
    use super::Durability;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("snaps");
    let snaps = Snapshotter::open(&root).unwrap();
    let a = snaps.prepare("a", "").unwrap();
    let b = snaps.prepare_with("b", "", Durability::Volatile).unwrap();
    let c = snaps.prepare("c", "").unwrap();
    // A crash in the middle of removing c: its record is gone, its files are not.
    std::fs::remove_file(c.upper.parent().unwrap().join("active.json")).unwrap();
    drop(snaps);
    let index = std::fs::read_to_string(root.join("index.json")).unwrap_or_default();
    assert!(
        !index.contains("\"a\""),
        "the index names an active snapshot: {index}"
    );

    let again = Snapshotter::open(&root).unwrap();
    assert_eq!(again.active().unwrap(), ["a", "b"]);
    assert_eq!(again.mounts("a").unwrap().upper, a.upper);
    assert_eq!(again.mounts("b").unwrap().upper, b.upper);
    assert!(!c.upper.exists(), "a snapshot without its record was kept");
    let d = again.prepare("d", "").unwrap();
    assert!(d.upper != a.upper && d.upper != b.upper, "an id was reused");
    again.remove("a").unwrap();
    assert!(!a.upper.parent().unwrap().exists());
    assert_eq!(again.active().unwrap(), ["b", "d"]);
}

/// An index written by an older version, with the active snapshots in it, is read and its
/// active snapshots get their own records.
#[test]
fn an_older_index_with_active_snapshots_is_migrated() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("snaps");
    std::fs::create_dir_all(root.join("snapshots/7/fs")).unwrap();
    std::fs::create_dir_all(root.join("snapshots/7/work")).unwrap();
    std::fs::write(
        root.join("index.json"),
        r#"{"next_id": 8, "committed": {}, "active": {"old": {"id": 7, "parent": null}}}"#,
    )
    .unwrap();
    let snaps = Snapshotter::open(&root).unwrap();
    assert_eq!(snaps.active().unwrap(), ["old"]);
    assert!(root.join("snapshots/7/active.json").exists());
    let index = std::fs::read_to_string(root.join("index.json")).unwrap();
    assert!(!index.contains("old"), "{index}");
    drop(snaps);
    assert_eq!(Snapshotter::open(&root).unwrap().active().unwrap(), ["old"]);
}
