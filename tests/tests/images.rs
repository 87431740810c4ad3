//! The image library end to end: import a busybox image (OCI layout and docker save), unpack
//! it into overlay snapshots, mount a container snapshot, commit and diff its changes,
//! export/import round trips and gc. Real mounts as root, each test in its own temp dirs.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use berth_images::{
    commit_image, export_archive, image_chain_id, import_archive, ChangeKind, ContentStore, Digest,
    ImageChanges, Snapshotter,
};
use berth_tests::images::{self, busybox_image, Entry, Layer, MountGuard, TestImage};

struct World {
    dir: tempfile::TempDir,
    store: ContentStore,
    snaps: Snapshotter,
}

fn world(what: &str) -> World {
    let dir = images::scratch(what);
    let store = ContentStore::open(&dir.path().join("content")).unwrap();
    let snaps = Snapshotter::open(&dir.path().join("snapshots")).unwrap();
    World { dir, store, snaps }
}

fn import_busybox(w: &World) -> (TestImage, Digest) {
    let img = busybox_image();
    let archive = images::tar_of(&images::layout_files(&[(
        &img,
        Some("localhost/busybox:test"),
    )]));
    let imported = import_archive(&w.store, &archive[..]).unwrap();
    assert_eq!(imported.len(), 1);
    assert_eq!(imported[0].name.as_deref(), Some("localhost/busybox:test"));
    assert_eq!(imported[0].manifest.as_str(), img.manifest_digest());
    assert_eq!(imported[0].config.as_str(), images::sha256(&img.config));
    (img, imported[0].manifest.clone())
}

fn mount_container(w: &World, key: &str, chain: &str) -> (std::path::PathBuf, MountGuard) {
    w.snaps.prepare(key, chain).unwrap();
    let target = w.dir.path().join(format!("rootfs-{key}"));
    std::fs::create_dir(&target).unwrap();
    w.snaps.mount(key, &target).unwrap();
    let guard = MountGuard(target.clone());
    (target, guard)
}

#[test]
fn import_unpack_and_mount_busybox() {
    let w = world("mount");
    let (_img, manifest) = import_busybox(&w);
    let unpacked = w.snaps.unpack(&w.store, &manifest).unwrap();
    assert_eq!(
        unpacked.chain_id,
        image_chain_id(&w.store, &manifest).unwrap()
    );
    assert_eq!(
        unpacked
            .config
            .config()
            .as_ref()
            .unwrap()
            .cmd()
            .as_ref()
            .unwrap(),
        &vec!["/bin/sh".to_string()]
    );
    assert_eq!(w.snaps.committed().unwrap().len(), 3);
    // Unpacking again reuses the snapshots.
    w.snaps.unpack(&w.store, &manifest).unwrap();
    assert_eq!(w.snaps.committed().unwrap().len(), 3);

    let (root, guard) = mount_container(&w, "c1", &unpacked.chain_id);
    let out = std::process::Command::new(root.join("bin/busybox"))
        .args(["echo", "hello"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello\n");
    // Layer 2 deleted etc/old and made opt/lower opaque.
    assert!(!root.join("etc/old").exists());
    assert!(root.join("etc/passwd").exists());
    let mut lower: Vec<_> = std::fs::read_dir(root.join("opt/lower"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    lower.sort();
    assert_eq!(lower, ["c"]);
    // setuid, ownership, xattrs, hardlinks, symlinks, sticky dirs.
    let suid = std::fs::metadata(root.join("usr/bin/suid")).unwrap();
    assert_eq!(suid.permissions().mode() & 0o7777, 0o4755);
    let owned = std::fs::metadata(root.join("etc/owned")).unwrap();
    assert_eq!(
        (owned.uid(), owned.gid(), owned.mode() & 0o777),
        (1000, 1001, 0o640)
    );
    assert_eq!(owned.mtime(), 1_700_000_000);
    let busybox = std::fs::metadata(root.join("bin/busybox")).unwrap();
    let cat = std::fs::metadata(root.join("bin/cat")).unwrap();
    assert_eq!(busybox.ino(), cat.ino());
    assert_eq!(
        std::fs::read_link(root.join("bin/ls")).unwrap(),
        Path::new("/bin/busybox")
    );
    assert_eq!(
        std::fs::read_link(root.join("bin/sh")).unwrap(),
        Path::new("busybox")
    );
    assert_eq!(
        std::fs::metadata(root.join("tmp")).unwrap().mode() & 0o7777,
        0o1777
    );
    let tagged = xattr(&root.join("etc/tagged"), "user.berth");
    assert_eq!(tagged.as_deref(), Some(&b"yes"[..]));
    assert_eq!(
        std::fs::read_to_string(root.join("etc/hostname")).unwrap(),
        "berth\n"
    );

    // Mounted snapshots are neither removed nor collected.
    let err = w.snaps.remove("c1").unwrap_err();
    assert!(err.to_string().contains("mounted"), "{err}");
    w.snaps.gc(&[], &[]).unwrap();
    assert_eq!(w.snaps.active().unwrap(), ["c1"]);
    assert_eq!(w.snaps.committed().unwrap().len(), 3);
    w.snaps.unmount(&root).unwrap();
    drop(guard);
    w.snaps.remove("c1").unwrap();

    // A read-only view of the image.
    let view = w.dir.path().join("view");
    std::fs::create_dir(&view).unwrap();
    w.snaps.mount_view(&unpacked.chain_id, &view).unwrap();
    let guard = MountGuard(view.clone());
    assert!(view.join("bin/busybox").exists() && !view.join("etc/old").exists());
    let err = std::fs::write(view.join("etc/x"), "x").unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EROFS));
    w.snaps.unmount(&view).unwrap();
    drop(guard);
    assert!(w.snaps.active().unwrap().is_empty());
}

fn xattr(path: &Path, key: &str) -> Option<Vec<u8>> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let p = CString::new(path.as_os_str().as_bytes()).unwrap();
    let k = CString::new(key).unwrap();
    let mut buf = vec![0u8; 256];
    let n = unsafe { libc::lgetxattr(p.as_ptr(), k.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    (n >= 0).then(|| buf[..n as usize].to_vec())
}

#[test]
fn export_import_round_trip_keeps_digests() {
    let w = world("roundtrip");
    let (img, manifest) = import_busybox(&w);
    let mut out = Vec::new();
    export_archive(
        &w.store,
        &[("localhost/busybox:test".into(), manifest.clone())],
        &mut out,
    )
    .unwrap();

    let w2 = world("roundtrip2");
    let again = import_archive(&w2.store, &out[..]).unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].manifest, manifest);
    assert_eq!(again[0].name.as_deref(), Some("localhost/busybox:test"));
    for (digest, _) in img.blobs() {
        assert!(
            w2.store.exists(&Digest::parse(&digest).unwrap()),
            "{digest}"
        );
    }
    let mut out2 = Vec::new();
    export_archive(
        &w2.store,
        &[("localhost/busybox:test".into(), manifest.clone())],
        &mut out2,
    )
    .unwrap();
    assert_eq!(out, out2, "export is deterministic");
    // And it unpacks.
    w2.snaps.unpack(&w2.store, &manifest).unwrap();
}

#[test]
fn docker_save_archive_imports_and_unpacks() {
    let w = world("docker");
    let img = busybox_image();
    let archive = images::docker_archive(&img, &["busybox:1", "example.com/bb:2"]);
    let imported = import_archive(&w.store, &archive[..]).unwrap();
    let names: Vec<_> = imported.iter().map(|i| i.name.clone().unwrap()).collect();
    assert_eq!(names, ["docker.io/library/busybox:1", "example.com/bb:2"]);
    assert_eq!(imported[0].manifest, imported[1].manifest);
    assert_eq!(imported[0].config.as_str(), images::sha256(&img.config));
    // Three layers, the config and the new manifest; not the legacy metadata files.
    assert_eq!(w.store.list().unwrap().len(), 5);
    let unpacked = w.snaps.unpack(&w.store, &imported[0].manifest).unwrap();
    // OCI layouts name images by full references or only tag them.
    let other = TestImage::new(vec![Layer::gzip(&[Entry::file("x", b"x")])]);
    let layout = images::layout_files(&[(&img, Some("busybox:1.36")), (&other, Some("v1"))]);
    let named = import_archive(&w.store, &images::tar_of(&layout)[..]).unwrap();
    assert_eq!(named[0].name.as_deref(), Some("docker.io/library/busybox:1.36"));
    assert_eq!(named[1].name, None);
    // Same layers as the OCI import: the same chain ID.
    assert_eq!(
        unpacked.chain_id,
        berth_images::manifest::chain_ids(
            &img.layers
                .iter()
                .map(|l| l.diff_id.clone())
                .collect::<Vec<_>>()
        )
        .unwrap()
        .last()
        .unwrap()
        .to_string()
    );
}

#[test]
fn commit_diff_and_new_image() {
    let w = world("commit");
    let (_img, manifest) = import_busybox(&w);
    let unpacked = w.snaps.unpack(&w.store, &manifest).unwrap();
    let (root, guard) = mount_container(&w, "work", &unpacked.chain_id);
    std::fs::write(root.join("etc/new"), "new\n").unwrap();
    std::fs::write(root.join("etc/passwd"), "changed\n").unwrap();
    std::fs::remove_file(root.join("etc/hostname")).unwrap();
    std::fs::remove_dir_all(root.join("opt/lower")).unwrap();
    std::fs::create_dir(root.join("opt/lower")).unwrap();
    std::fs::write(root.join("opt/lower/d"), "d\n").unwrap();
    std::fs::set_permissions(
        root.join("etc/new"),
        std::fs::Permissions::from_mode(0o2750),
    )
    .unwrap();
    w.snaps.unmount(&root).unwrap();
    drop(guard);
    let usage = w.snaps.usage("work").unwrap();
    assert!(usage.inodes >= 6 && usage.bytes > 0, "{usage:?}");
    assert!(w.snaps.disk_usage().bytes > usage.bytes + 1_000_000, "busybox is in there");
    assert!(w.store.disk_usage().unwrap() > 500_000);

    let changes = w.snaps.diff("work").unwrap();
    let has = |kind, path: &str| changes.iter().any(|c| c.kind == kind && c.path == path);
    assert!(has(ChangeKind::Added, "/etc/new"), "{changes:?}");
    assert!(has(ChangeKind::Modified, "/etc/passwd"), "{changes:?}");
    assert!(has(ChangeKind::Deleted, "/etc/hostname"), "{changes:?}");
    assert!(has(ChangeKind::Added, "/opt/lower/d"), "{changes:?}");
    assert!(has(ChangeKind::Deleted, "/opt/lower/c"), "{changes:?}");
    assert!(
        !changes.iter().any(|c| c.path.starts_with("/bin")),
        "{changes:?}"
    );

    let layer = w.snaps.commit("work", &w.store).unwrap();
    assert!(w.store.exists(&layer.blob.digest));
    let changes = ImageChanges {
        cmd: Some(vec!["/bin/busybox".into(), "true".into()]),
        comment: Some("test commit".into()),
        ..Default::default()
    };
    let new_manifest = commit_image(&w.store, &manifest, &layer, Some(&changes)).unwrap();
    let new = w.snaps.unpack(&w.store, &new_manifest).unwrap();
    assert_eq!(new.config.rootfs().diff_ids().len(), 4);
    assert_eq!(new.config.rootfs().diff_ids()[3], layer.diff_id.to_string());
    assert_eq!(
        new.config
            .config()
            .as_ref()
            .unwrap()
            .cmd()
            .as_ref()
            .unwrap(),
        &vec!["/bin/busybox".to_string(), "true".to_string()]
    );
    assert_eq!(new.config.history().as_ref().unwrap().len(), 1);

    let (root2, guard2) = mount_container(&w, "check", &new.chain_id);
    assert_eq!(
        std::fs::read_to_string(root2.join("etc/new")).unwrap(),
        "new\n"
    );
    assert_eq!(
        std::fs::metadata(root2.join("etc/new")).unwrap().mode() & 0o7777,
        0o2750
    );
    assert_eq!(
        std::fs::read_to_string(root2.join("etc/passwd")).unwrap(),
        "changed\n"
    );
    assert!(!root2.join("etc/hostname").exists());
    assert!(root2.join("bin/busybox").exists());
    let lower: Vec<_> = std::fs::read_dir(root2.join("opt/lower"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(lower, ["d"]);
    w.snaps.unmount(&root2).unwrap();
    drop(guard2);
    w.snaps.remove("check").unwrap();
    w.snaps.remove("work").unwrap();
}

#[test]
fn gc_removes_unreferenced_content_and_snapshots() {
    let w = world("gc");
    let (img, manifest) = import_busybox(&w);
    let other = TestImage::new(vec![Layer::gzip(&[Entry::file("only-here", b"x")])]);
    let archive = images::tar_of(&images::layout_files(&[(
        &other,
        Some("localhost/other:1"),
    )]));
    let other_manifest = import_archive(&w.store, &archive[..]).unwrap()[0]
        .manifest
        .clone();
    let a = w.snaps.unpack(&w.store, &manifest).unwrap();
    let b = w.snaps.unpack(&w.store, &other_manifest).unwrap();
    w.snaps.prepare("keep", &a.chain_id).unwrap();
    w.snaps.prepare("drop", &b.chain_id).unwrap();
    let stray = w.store.put(b"stray").unwrap().digest;

    // Only the busybox image and the "keep" container are referenced.
    let report = w.store.gc(std::slice::from_ref(&manifest)).unwrap();
    assert!(report.removed.contains(&stray));
    assert!(report.removed.contains(&other_manifest));
    assert_eq!(report.removed.len(), 4, "{report:?}");
    for (digest, _) in img.blobs() {
        assert!(w.store.exists(&Digest::parse(&digest).unwrap()));
    }
    let removed = w.snaps.gc(&[], &["keep".to_string()]).unwrap();
    assert!(removed.contains(&"drop".to_string()));
    assert!(removed.contains(&b.chain_id));
    assert_eq!(
        w.snaps.committed().unwrap().len(),
        3,
        "kept by the active snapshot"
    );
    assert_eq!(w.snaps.active().unwrap(), ["keep"]);
    // Nothing referenced: everything goes.
    w.snaps.gc(&[], &[]).unwrap();
    assert!(w.snaps.committed().unwrap().is_empty());
    assert_eq!(
        std::fs::read_dir(w.dir.path().join("snapshots/snapshots"))
            .unwrap()
            .count(),
        0
    );
    w.store.gc(&[]).unwrap();
    assert!(w.store.list().unwrap().is_empty());
}

#[test]
fn snapshotter_reopens_and_cleans_leftovers() {
    let w = world("reopen");
    let (_img, manifest) = import_busybox(&w);
    let a = w.snaps.unpack(&w.store, &manifest).unwrap();
    w.snaps.prepare("c", &a.chain_id).unwrap();
    let leftover = w.dir.path().join("snapshots/snapshots/999");
    std::fs::create_dir_all(leftover.join("fs")).unwrap();
    let again = Snapshotter::open(&w.dir.path().join("snapshots")).unwrap();
    assert!(again.is_committed(&a.chain_id));
    assert_eq!(again.active().unwrap(), ["c"]);
    assert!(!leftover.exists());
    assert!(again.prepare("c", &a.chain_id).is_err());
    assert!(again
        .prepare(
            "d",
            "sha256:0000000000000000000000000000000000000000000000000000000000000000"
        )
        .is_err());
}

#[test]
fn concurrent_unpacks_share_snapshots() {
    let w = world("concurrent");
    let (_img, manifest) = import_busybox(&w);
    let chains: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..3)
            .map(|_| s.spawn(|| w.snaps.unpack(&w.store, &manifest).unwrap().chain_id))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(chains.iter().all(|c| *c == chains[0]));
    assert_eq!(w.snaps.committed().unwrap().len(), 3);
    // The losers' copies were removed: one dir per committed snapshot.
    let dirs = std::fs::read_dir(w.dir.path().join("snapshots/snapshots"))
        .unwrap()
        .count();
    assert_eq!(dirs, 3);
}

#[test]
fn zstd_layers_unpack() {
    let w = world("zstd");
    let big: Vec<u8> = (0..300_000u32).flat_map(|i| i.to_le_bytes()).collect();
    let img = TestImage::new(vec![
        Layer::zstd(&[Entry::file("big", &big), Entry::dir("d/")]),
        Layer::gzip(&[
            Entry::file("d/.wh..wh..opq", b""),
            Entry::file("small", b"s"),
        ]),
    ]);
    let archive = images::tar_of(&images::layout_files(&[(&img, Some("localhost/z:1"))]));
    let manifest = import_archive(&w.store, &archive[..]).unwrap()[0]
        .manifest
        .clone();
    let unpacked = w.snaps.unpack(&w.store, &manifest).unwrap();
    let (root, guard) = mount_container(&w, "z", &unpacked.chain_id);
    assert_eq!(std::fs::read(root.join("big")).unwrap(), big);
    assert_eq!(std::fs::read(root.join("small")).unwrap(), b"s");
    w.snaps.unmount(&root).unwrap();
    drop(guard);

    // A zstd docker-save layer is recognized as such.
    let w2 = world("zstd-docker");
    let imported = import_archive(&w2.store, &images::docker_archive(&img, &["z:1"])[..]).unwrap();
    let m = berth_images::manifest::load_manifest(&w2.store, &imported[0].manifest).unwrap();
    assert_eq!(
        m.layers()[0].media_type().to_string(),
        berth_images::manifest::OCI_LAYER_ZSTD
    );
    w2.snaps.unpack(&w2.store, &imported[0].manifest).unwrap();
}
