//! Images through berthd and berthctl: import, run, whiteouts and opaque dirs and setuid in a
//! running container, commit/diff, save/import round trip, gc, and pulls from a real registry
//! (plain HTTP, then through a mirror).

use berth_tests::daemon::{err_text, ok, text, DaemonGuard};
use berth_tests::images::{busybox_image, busybox_image_gzip, layout_files, tar_of, write_dir};
use berth_tests::images_registry::Registry;

/// Imports the 3-layer test image as `name`.
fn import_test_image(d: &DaemonGuard, name: &str) -> String {
    let img = busybox_image();
    let tar = tar_of(&layout_files(&[(&img, None)]));
    let path = d.dir.path().join("img.tar");
    std::fs::write(&path, tar).unwrap();
    let o = d.run(&["import", "--name", name, path.to_str().unwrap()]);
    ok(&o);
    assert!(text(&o).contains(&img.manifest_digest()), "{}", text(&o));
    img.manifest_digest()
}

#[test]
fn layers_apply_in_a_running_container_and_commit_diff_work() {
    let d = DaemonGuard::start();
    import_test_image(&d, "layered:1");
    let script = "cat /etc/old 2>/dev/null || echo gone; ls /opt/lower; stat -c %a /usr/bin/suid";
    let o = d.run(&[
        "run",
        "--rm",
        "--network",
        "none",
        "layered:1",
        "sh",
        "-c",
        script,
    ]);
    assert_eq!(text(&o), "gone\nc\n4755\n", "{}", err_text(&o));

    ok(&d.run(&[
        "run",
        "--name",
        "changer",
        "--network",
        "none",
        "layered:1",
        "sh",
        "-c",
        "echo hi > /new; rm /etc/passwd",
    ]));
    let diff = text(&d.run(&["diff", "changer"]));
    assert!(diff.lines().any(|l| l == "A /new"), "{diff}");
    assert!(diff.lines().any(|l| l == "D /etc/passwd"), "{diff}");
    ok(&d.run(&["commit", "changer", "committed:1"]));
    ok(&d.run(&["rm", "changer"]));
    let o = d.run(&[
        "run",
        "--rm",
        "--network",
        "none",
        "committed:1",
        "sh",
        "-c",
        "cat /new; cat /etc/passwd 2>/dev/null || echo nopasswd",
    ]);
    assert_eq!(text(&o), "hi\nnopasswd\n", "{}", err_text(&o));
}

#[test]
fn save_and_import_keep_digests_and_gc_removes_unreferenced_blobs() {
    let d = DaemonGuard::start();
    let digest = import_test_image(&d, "roundtrip:1");
    let saved = d.dir.path().join("saved.tar");
    ok(&d.run(&["save", "-o", saved.to_str().unwrap(), "roundtrip:1"]));
    ok(&d.run(&["rmi", "roundtrip:1"]));
    // Nothing references the blobs any more: gc removed them.
    let blobs = d.root().join("content/blobs/sha256");
    let left: Vec<_> = std::fs::read_dir(&blobs)
        .map(|e| e.flatten().collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "blobs left after rmi: {}", left.len());
    let o = d.run(&["import", saved.to_str().unwrap()]);
    ok(&o);
    assert!(
        text(&o).contains("roundtrip:1") && text(&o).contains(&digest),
        "{}",
        text(&o)
    );
    let images = text(&d.run(&["images", "--format", "json"]));
    let v: serde_json::Value = serde_json::from_str(&images).unwrap();
    assert_eq!(v[0]["digest"], digest.as_str());
    // Unknown images and bad references are clear errors.
    let o = d.run(&["run", "--rm", "nosuch:image", "true"]);
    assert_eq!(o.status.code(), Some(125));
    assert!(err_text(&o).contains("not found"), "{}", err_text(&o));
    let o = d.run(&["rmi", "UPPER/Case::bad"]);
    assert_eq!(o.status.code(), Some(125));
}

#[test]
fn pull_from_a_registry_and_through_a_mirror() {
    let reg = Registry::start();
    let img = busybox_image_gzip();
    let layout = tempfile::tempdir().unwrap();
    write_dir(layout.path(), &layout_files(&[(&img, Some("v1"))]));
    reg.push(layout.path(), "v1", "library/bb:v1", false);
    // Registry hosts: the loopback registry (plain HTTP) and a mirror-only host name.
    let hosts = tempfile::tempdir().unwrap();
    let mirror_dir = hosts.path().join("mirror.test");
    std::fs::create_dir_all(&mirror_dir).unwrap();
    std::fs::write(
        mirror_dir.join("hosts.json"),
        format!(
            "{{\"mirrors\": [\"http://{}\"], \"skip_upstream\": true}}",
            reg.addr
        ),
    )
    .unwrap();
    let d = DaemonGuard::start_with(&["--registry-dir", hosts.path().to_str().unwrap()]);
    let direct = format!("{}/library/bb:v1", reg.addr);
    let o = d.run(&["pull", &direct]);
    ok(&o);
    let o = d.run(&[
        "run",
        "--rm",
        "--network",
        "none",
        &direct,
        "cat",
        "/opt/lower/c",
    ]);
    assert_eq!(text(&o), "c\n", "{}", err_text(&o));
    let o = d.run(&["pull", "mirror.test/library/bb:v1"]);
    ok(&o);
    let o = d.run(&[
        "run",
        "--rm",
        "--network",
        "none",
        "mirror.test/library/bb:v1",
        "cat",
        "/opt/lower/c",
    ]);
    ok(&o);
    let names = text(&d.run(&["images", "-q"]));
    assert!(names.contains("mirror.test/library/bb:v1"), "{names}");
    drop(reg);
}

/// `run --rm` mounts the writable layer volatile (no sync when it goes); a kept container's
/// layer stays synced, and `start` of an exited container runs it again on the same layer.
#[test]
fn removed_containers_get_a_volatile_writable_layer() {
    let d = DaemonGuard::start();
    import_test_image(&d, "layered:1");
    let root_opts = "awk '$5 == \"/\" { print $NF }' /proc/self/mountinfo";
    let o = d.run(&[
        "run",
        "--rm",
        "--network",
        "none",
        "layered:1",
        "sh",
        "-c",
        root_opts,
    ]);
    assert!(
        text(&o).contains("volatile"),
        "{}{}",
        text(&o),
        err_text(&o)
    );
    let o = d.run(&[
        "run",
        "--name",
        "kept",
        "--network",
        "none",
        "layered:1",
        "sh",
        "-c",
        root_opts,
    ]);
    assert!(
        text(&o).contains("upperdir"),
        "{}{}",
        text(&o),
        err_text(&o)
    );
    assert!(!text(&o).contains("volatile"), "{}", text(&o));
    ok(&d.run(&["rm", "kept"]));

    // Detached --rm: the daemon removes it; started twice it must mount again.
    let o = d.run(&[
        "create",
        "--name",
        "again",
        "--network",
        "none",
        "layered:1",
        "sh",
        "-c",
        root_opts,
    ]);
    ok(&o);
    for _ in 0..2 {
        let o = d.run(&["start", "-a", "again"]);
        assert!(
            text(&o).contains("upperdir"),
            "{}{}",
            text(&o),
            err_text(&o)
        );
    }
    ok(&d.run(&["rm", "again"]));
}

/// Writable snapshots keep their own records: a running container's layer survives a kill -9
/// and restart of berthd (and works: the file written before is there), while a snapshot no
/// container names (what a host crash leaves of a `run --rm` whose record was not flushed) is
/// removed at start.
#[test]
fn snapshots_without_a_container_are_swept_at_start_and_live_ones_kept() {
    let mut d = DaemonGuard::start();
    import_test_image(&d, "layered:1");
    ok(&d.run(&[
        "run",
        "-d",
        "--name",
        "live",
        "--network",
        "none",
        "layered:1",
        "sh",
        "-c",
        "echo kept > /marker; sleep 300",
    ]));
    let snaps = d.root().join("snapshots/snapshots");
    let planted = snaps.join("999999");
    std::fs::create_dir_all(planted.join("fs")).unwrap();
    std::fs::create_dir_all(planted.join("work")).unwrap();
    std::fs::write(
        planted.join("active.json"),
        r#"{"key":"default.0123456789abcdef0123456789abcdef","parent":null}"#,
    )
    .unwrap();
    d.stop(nix::sys::signal::Signal::SIGKILL);
    d.spawn();
    // The start-up orphan pass runs beside the API: give it a moment.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while planted.exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(!planted.exists(), "an unreferenced snapshot was kept");
    let o = d.run(&["exec", "live", "cat", "/marker"]);
    assert_eq!(text(&o), "kept\n", "{}", err_text(&o));
    ok(&d.run(&["rm", "-f", "live"]));
    let left: Vec<_> = std::fs::read_dir(&snaps)
        .unwrap()
        .flatten()
        .filter(|e| e.path().join("active.json").exists())
        .map(|e| e.path())
        .collect();
    assert!(left.is_empty(), "writable snapshots left: {left:?}");
}
