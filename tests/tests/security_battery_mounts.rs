//! Security battery, mount destinations: a bind mount or tmpfs whose destination in the image is
//! a symlink to a host path (before create), or is swapped for one by another container while
//! the container is created (CVE-2021-30465), lands inside the container or is refused; the
//! host path gets no mount and no file.

use std::path::{Path, PathBuf};

use berth_tests::attack::{Battery, IMAGE};
use berth_tests::daemon::{err_text, text};
use berth_tests::images::Entry;

/// A host directory an attack aims at; checked empty and unmounted afterwards.
fn host_target(b: &Battery, name: &str) -> PathBuf {
    let p = b.d.dir.path().join(name);
    std::fs::create_dir_all(&p).unwrap();
    p
}

fn assert_untouched(target: &Path) {
    let entries: Vec<_> = std::fs::read_dir(target)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert!(entries.is_empty(), "written on the host: {entries:?}");
    let mounts = berth_tests::guard::mounts_under(target);
    assert!(mounts.is_empty(), "mounted on the host: {mounts:?}");
}

#[test]
fn a_symlinked_destination_in_the_image_stays_in_the_rootfs() {
    let b = Battery::shared();
    let target = host_target(&b, "symlink-target");
    let volume = host_target(&b, "symlink-volume");
    let t = target.to_str().unwrap();
    // /evil → the host dir, /data → the host dir: absolute host paths in the image.
    b.import(
        "symlinked-dest:1",
        vec![Entry::symlink("evil", t), Entry::symlink("data", t)],
    );
    let vol = format!("{}:/evil/sub", volume.display());
    let vol2 = format!("{}:/data", volume.display());
    for flags in [
        vec!["--tmpfs", "/evil/sub"],
        vec!["-v", vol.as_str()],
        vec!["-v", vol2.as_str()],
        vec!["--tmpfs", "/data"],
    ] {
        let o = b.run_image(
            "symlinked-dest:1",
            &flags,
            &[
                "sh",
                "-c",
                "touch /evil/sub/marker /data/marker 2>/dev/null; echo done",
            ],
        );
        assert_eq!(text(&o), "done\n", "{flags:?}: {}", err_text(&o));
        assert_untouched(&target);
        // The volume was mounted where the symlink leads inside the rootfs: the marker written
        // through the symlink is in it.
        if flags[0] == "-v" {
            let marker = volume.join("marker");
            assert!(marker.exists(), "{flags:?}: the volume got nothing");
            std::fs::remove_file(marker).unwrap();
        }
    }
}

#[test]
fn a_destination_swapped_for_a_symlink_during_create_stays_in_the_rootfs() {
    let b = Battery::shared();
    let target = host_target(&b, "race-target");
    let shared = host_target(&b, "race-shared");
    let t = target.to_str().unwrap();
    let vol = format!("{}:/v", shared.display());
    // The swapper flips /v/x between a directory and a symlink to the host dir, non-stop.
    let swap = format!(
        "while :; do rm -rf /v/x; mkdir /v/x; rm -rf /v/x; ln -s {t} /v/x; \
         rm -f /v/x; ln -s /../../../../{t} /v/x; done"
    );
    let o = b.d.run(&[
        "run",
        "-d",
        "--name",
        "swapper",
        "--network",
        "none",
        "-v",
        &vol,
        IMAGE,
        "sh",
        "-c",
        &swap,
    ]);
    assert!(o.status.success(), "{}", err_text(&o));
    // Creates that went through (the mount made wherever /v/x led inside the rootfs at that
    // moment) and those refused (the destination vanished while it was resolved).
    let (mut created, mut refused) = (0, 0);
    for _ in 0..15 {
        let o = b.run(
            &["-v", &vol, "--tmpfs", "/v/x/sub"],
            &["sh", "-c", "touch /v/x/sub/marker && echo wrote"],
        );
        if err_text(&o).contains("berthctl:") {
            refused += 1;
        } else {
            created += 1;
        }
        assert_untouched(&target);
    }
    b.d.run(&["rm", "-f", "swapper"]);
    eprintln!("racing creates: {created} created, {refused} refused");
    assert_eq!(created + refused, 15);
    assert_untouched(&target);
}
