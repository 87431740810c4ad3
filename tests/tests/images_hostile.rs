//! A corpus of hostile image archives, each rejected with a clear error, with nothing written
//! outside the snapshot directories and no partial state left behind.

use std::path::{Path, PathBuf};

use berth_images::{import_archive, ContentStore, ImageError, Snapshotter};
use berth_tests::hostile_images::{corpus, target, TARGET_TAGS};
use berth_tests::images::{self, layout_files, tar_of};

fn tree(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            out.push(e.path());
            if e.file_type().unwrap().is_dir() {
                out.extend(tree(&e.path()));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn hostile_archives_are_rejected_and_leave_nothing() {
    let cases = corpus();
    assert!(cases.len() >= 20, "{}", cases.len());
    let etc_passwd = std::fs::read("/etc/passwd").unwrap();
    for case in cases {
        let dir = images::scratch("hostile");
        let store = ContentStore::open(&dir.path().join("content")).unwrap();
        let snaps = Snapshotter::open(&dir.path().join("snapshots")).unwrap();
        let err: ImageError = match import_archive(&store, &case.archive[..]) {
            Err(e) => {
                // The import added nothing.
                assert!(
                    store.list().unwrap().is_empty(),
                    "{}: blobs left",
                    case.name
                );
                e
            }
            Ok(imported) => {
                let before = store.list().unwrap();
                let e = snaps
                    .unpack(&store, &imported[0].manifest)
                    .expect_err(case.name);
                assert_eq!(store.list().unwrap(), before);
                e
            }
        };
        let msg = err.to_string();
        assert!(msg.contains(case.error), "{}: {msg}", case.name);
        // No snapshot (complete or partial) was left, and nothing escaped.
        assert!(snaps.committed().unwrap().is_empty(), "{}", case.name);
        assert!(
            tree(&dir.path().join("snapshots/snapshots")).is_empty(),
            "{}: {:?}",
            case.name,
            tree(&dir.path().join("snapshots/snapshots"))
        );
        for tag in TARGET_TAGS {
            assert!(
                !target(tag).exists(),
                "{}: {} written",
                case.name,
                target(tag).display()
            );
        }
        assert!(!dir.path().parent().unwrap().join("escape.json").exists());
        assert_eq!(std::fs::read("/etc/passwd").unwrap(), etc_passwd);
        eprintln!("{}: rejected: {msg}", case.name);
    }
}

#[test]
fn failed_import_keeps_blobs_that_were_already_stored() {
    let dir = images::scratch("keep");
    let store = ContentStore::open(dir.path()).unwrap();
    let good = images::busybox_image();
    let archive = tar_of(&layout_files(&[(&good, Some("localhost/good:1"))]));
    import_archive(&store, &archive[..]).unwrap();
    let before = store.list().unwrap();

    // The same blobs (once under a blob name, once as a docker layer file) plus a bad one.
    let mut files = layout_files(&[(&good, None)]);
    files.push(("layer/layer.tar".into(), good.layers[0].blob.clone()));
    files.push((
        "blobs/sha256/".to_string() + &"0".repeat(64),
        b"not zeros".to_vec(),
    ));
    let err = import_archive(&store, &tar_of(&files)[..]).unwrap_err();
    assert!(err.to_string().contains("content mismatch"), "{err}");
    assert_eq!(store.list().unwrap(), before);
}
