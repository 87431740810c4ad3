//! Pulls from a real registry (Debian's docker-registry on loopback, plain HTTP): by tag and
//! digest, through a mirror entry, from a multi-platform index, with progress events; the
//! pulled image unpacks.

use std::collections::HashMap;

use berth_images::{
    normalize, pull, BlobKind, ContentStore, HostConfig, Progress, PullStatus, RegistryConfig,
    Snapshotter,
};
use berth_tests::images::{self, busybox_image_gzip, Entry, Layer, TestImage};
use berth_tests::images_registry::Registry;
use serde_json::json;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn pull_by_tag_digest_and_mirror() {
    let registry = Registry::start();
    let img = busybox_image_gzip();
    let layout = images::scratch("layout");
    images::write_dir(
        layout.path(),
        &images::layout_files(&[(&img, Some("test"))]),
    );
    registry.push(layout.path(), "test", "busybox:test", false);

    let dir = images::scratch("pull");
    let store = ContentStore::open(&dir.path().join("content")).unwrap();
    let cfg = RegistryConfig::default();
    let reference = normalize(&format!("{}/busybox:test", registry.addr)).unwrap();
    let mut events: Vec<Progress> = Vec::new();
    let pulled = rt()
        .block_on(pull(&store, &reference, &cfg, |p| events.push(p)))
        .unwrap();
    assert_eq!(pulled.name, format!("{}/busybox:test", registry.addr));
    assert_eq!(pulled.manifest.as_str(), img.manifest_digest());
    assert_eq!(pulled.config.as_str(), images::sha256(&img.config));
    for (digest, _) in img.blobs() {
        assert!(store.exists(&digest.parse().unwrap()), "{digest}");
    }
    let done_layers = events
        .iter()
        .filter(|e| e.kind == BlobKind::Layer && e.status == PullStatus::Done)
        .count();
    assert_eq!(done_layers, 3, "{events:?}");
    let busybox_layer = &img.layers[0];
    assert!(events.iter().any(|e| e.kind == BlobKind::Layer
        && e.status == PullStatus::Downloading
        && e.total == busybox_layer.blob.len() as u64
        && e.done > 0
        && e.done < e.total));

    // It unpacks.
    let snaps = Snapshotter::open(&dir.path().join("snapshots")).unwrap();
    let unpacked = snaps.unpack(&store, &pulled.manifest).unwrap();
    assert_eq!(unpacked.config_digest, pulled.config);

    // Again: nothing downloaded.
    let mut events = Vec::new();
    rt().block_on(pull(&store, &reference, &cfg, |p| events.push(p)))
        .unwrap();
    assert!(!events.iter().any(|e| e.status == PullStatus::Downloading));
    assert_eq!(
        events
            .iter()
            .filter(|e| e.status == PullStatus::Exists)
            .count(),
        4
    );

    // By digest.
    let by_digest = normalize(&format!(
        "{}/busybox@{}",
        registry.addr,
        img.manifest_digest()
    ))
    .unwrap();
    let again = rt()
        .block_on(pull(&store, &by_digest, &cfg, |_| {}))
        .unwrap();
    assert_eq!(again.manifest, pulled.manifest);

    // Through a mirror (a dead one first), into a fresh store; the upstream is not tried.
    let dir2 = images::scratch("mirror");
    let store2 = ContentStore::open(dir2.path()).unwrap();
    let mut hosts = HashMap::new();
    hosts.insert(
        "mirror.test".to_string(),
        HostConfig {
            mirrors: vec![
                "http://127.0.0.1:1".into(),
                format!("http://{}", registry.addr),
            ],
            skip_upstream: true,
            ..Default::default()
        },
    );
    let mirror_cfg = RegistryConfig {
        hosts,
        ..Default::default()
    };
    let via_mirror = rt()
        .block_on(pull(
            &store2,
            &normalize("mirror.test/busybox:test").unwrap(),
            &mirror_cfg,
            |_| {},
        ))
        .unwrap();
    assert_eq!(via_mirror.manifest, pulled.manifest);
    assert_eq!(via_mirror.name, "mirror.test/busybox:test");
    assert_eq!(store2.list().unwrap().len(), 5);

    // Unknown tags and hosts fail with the registry's answer; nothing is stored.
    let dir3 = images::scratch("missing");
    let store3 = ContentStore::open(dir3.path()).unwrap();
    let err = rt()
        .block_on(pull(
            &store3,
            &normalize(&format!("{}/busybox:nope", registry.addr)).unwrap(),
            &cfg,
            |_| {},
        ))
        .unwrap_err();
    assert!(err.to_string().contains("404"), "{err}");
    let err = rt()
        .block_on(pull(
            &store3,
            &normalize("mirror.test/busybox:test").unwrap(),
            &RegistryConfig {
                hosts: HashMap::from([(
                    "mirror.test".to_string(),
                    HostConfig {
                        mirrors: vec!["http://127.0.0.1:1".into()],
                        skip_upstream: true,
                        ..Default::default()
                    },
                )]),
                ..Default::default()
            },
            |_| {},
        ))
        .unwrap_err();
    assert!(err.to_string().contains("127.0.0.1:1"), "{err}");
    assert!(store3.list().unwrap().is_empty());
}

#[test]
fn pull_selects_the_platform_from_an_index() {
    let registry = Registry::start();
    let amd64 = busybox_image_gzip();
    let arm64 = TestImage::new(vec![Layer::gzip(&[Entry::file("arch", b"arm64\n")])]);
    let mut files = images::layout_files(&[(&amd64, None), (&arm64, None)]);
    let index = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            { "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": arm64.manifest_digest(),
              "size": arm64.manifest.len(), "platform": { "os": "linux", "architecture": "arm64", "variant": "v8" } },
            { "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": amd64.manifest_digest(),
              "size": amd64.manifest.len(), "platform": { "os": "linux", "architecture": "amd64" } },
        ],
    });
    let index = serde_json::to_vec(&index).unwrap();
    let index_digest = images::sha256(&index);
    files.retain(|(p, _)| p != "index.json");
    files.push((
        format!("blobs/sha256/{}", &index_digest[7..]),
        index.clone(),
    ));
    let top = json!({ "schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.index.v1+json", "digest": index_digest, "size": index.len(),
        "annotations": { "org.opencontainers.image.ref.name": "multi" } }] });
    files.push(("index.json".into(), serde_json::to_vec(&top).unwrap()));
    let layout = images::scratch("layout");
    images::write_dir(layout.path(), &files);
    registry.push(layout.path(), "multi", "multi:1", true);

    let reference = normalize(&format!("{}/multi:1", registry.addr)).unwrap();
    let dir = images::scratch("platform");
    let store = ContentStore::open(dir.path()).unwrap();
    let pulled = rt()
        .block_on(pull(&store, &reference, &RegistryConfig::default(), |_| {}))
        .unwrap();
    assert_eq!(pulled.manifest.as_str(), amd64.manifest_digest());
    assert_eq!(pulled.index.as_ref().unwrap().as_str(), index_digest);
    let cfg = RegistryConfig {
        platform: Some("linux/arm64/v8".into()),
        ..Default::default()
    };
    let pulled = rt()
        .block_on(pull(&store, &reference, &cfg, |_| {}))
        .unwrap();
    assert_eq!(pulled.manifest.as_str(), arm64.manifest_digest());
    let cfg = RegistryConfig {
        platform: Some("linux/s390x".into()),
        ..Default::default()
    };
    let err = rt()
        .block_on(pull(&store, &reference, &cfg, |_| {}))
        .unwrap_err();
    assert!(
        err.to_string().contains("no manifest for linux/s390x"),
        "{err}"
    );
}

#[test]
fn pull_with_bearer_and_basic_auth() {
    use berth_images::Credentials;
    use berth_tests::images_registry::{AuthMode, AuthProxy, PROXY_USER};

    let registry = Registry::start();
    let img = busybox_image_gzip();
    let layout = images::scratch("layout");
    images::write_dir(
        layout.path(),
        &images::layout_files(&[(&img, Some("test"))]),
    );
    registry.push(layout.path(), "test", "busybox:test", false);

    for mode in [AuthMode::Bearer, AuthMode::Basic] {
        let proxy = AuthProxy::start(&registry.addr, mode);
        let reference = normalize(&format!("{}/busybox:test", proxy.addr)).unwrap();
        let dir = images::scratch("auth");
        let store = ContentStore::open(dir.path()).unwrap();

        // Without credentials: refused, nothing stored.
        let err = rt()
            .block_on(pull(&store, &reference, &RegistryConfig::default(), |_| {}))
            .unwrap_err();
        let text = err.to_string();
        match mode {
            AuthMode::Bearer => assert!(text.contains("token") && text.contains("401"), "{text}"),
            AuthMode::Basic => assert!(text.contains("credentials required"), "{text}"),
            AuthMode::Corrupt => unreachable!(),
        }
        assert!(store.list().unwrap().is_empty());

        let cfg = RegistryConfig {
            hosts: HashMap::from([(
                proxy.addr.clone(),
                HostConfig {
                    auth: Some(Credentials {
                        username: PROXY_USER.0.into(),
                        password: PROXY_USER.1.into(),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
            )]),
            ..Default::default()
        };
        let pulled = rt()
            .block_on(pull(&store, &reference, &cfg, |_| {}))
            .unwrap();
        assert_eq!(pulled.manifest.as_str(), img.manifest_digest(), "{mode:?}");
        assert_eq!(store.list().unwrap().len(), 5);
        let tokens = proxy.tokens.load(std::sync::atomic::Ordering::SeqCst);
        match mode {
            // One token per client (manifest endpoint, then each blob client reuses its own).
            AuthMode::Bearer => assert!(tokens >= 1, "{tokens}"),
            AuthMode::Basic => assert_eq!(tokens, 0),
            AuthMode::Corrupt => unreachable!(),
        }
    }
}

#[test]
fn corrupt_blobs_from_a_registry_are_rejected() {
    use berth_tests::images_registry::{AuthMode, AuthProxy};

    let registry = Registry::start();
    let img = busybox_image_gzip();
    let layout = images::scratch("layout");
    images::write_dir(
        layout.path(),
        &images::layout_files(&[(&img, Some("test"))]),
    );
    registry.push(layout.path(), "test", "busybox:test", false);
    let proxy = AuthProxy::start(&registry.addr, AuthMode::Corrupt);
    let dir = images::scratch("corrupt");
    let store = ContentStore::open(dir.path()).unwrap();
    let reference = normalize(&format!("{}/busybox:test", proxy.addr)).unwrap();
    let err = rt()
        .block_on(pull(&store, &reference, &RegistryConfig::default(), |_| {}))
        .unwrap_err();
    assert!(err.to_string().contains("content mismatch"), "{err}");
    // No corrupt blob and no manifest were stored, no temp file left.
    assert!(!store.exists(&img.manifest_digest().parse().unwrap()));
    for blob in store.list().unwrap() {
        let data = std::fs::read(store.blob_path(&blob.digest)).unwrap();
        assert_eq!(images::sha256(&data), blob.digest.as_str());
    }
    assert_eq!(
        std::fs::read_dir(dir.path().join("ingest"))
            .unwrap()
            .count(),
        0
    );
}

#[test]
fn push_then_pull_keeps_digests() {
    use berth_images::{import_archive, push};

    let registry = Registry::start();
    // With an uncompressed layer: pushed byte for byte, unlike skopeo.
    let img = images::busybox_image();
    let dir = images::scratch("push");
    let store = ContentStore::open(dir.path()).unwrap();
    let archive = images::tar_of(&images::layout_files(&[(&img, Some("localhost/bb:1"))]));
    let manifest = import_archive(&store, &archive[..]).unwrap()[0]
        .manifest
        .clone();
    let reference = normalize(&format!("{}/pushed/busybox:v1", registry.addr)).unwrap();
    let cfg = RegistryConfig::default();
    let mut events = Vec::new();
    rt().block_on(push(&store, &manifest, &reference, &cfg, |p| {
        events.push(p)
    }))
    .unwrap();
    assert_eq!(
        events
            .iter()
            .filter(|e| e.status == PullStatus::Done)
            .count(),
        4,
        "{events:?}"
    );
    // Again: the registry has every blob.
    let mut events = Vec::new();
    rt().block_on(push(&store, &manifest, &reference, &cfg, |p| {
        events.push(p)
    }))
    .unwrap();
    assert!(
        events.iter().all(|e| e.status == PullStatus::Exists),
        "{events:?}"
    );

    let dir2 = images::scratch("pushed-pull");
    let store2 = ContentStore::open(dir2.path()).unwrap();
    let pulled = rt()
        .block_on(pull(&store2, &reference, &cfg, |_| {}))
        .unwrap();
    assert_eq!(pulled.manifest, manifest);
    assert_eq!(store2.list().unwrap(), store.list().unwrap());
    Snapshotter::open(&dir2.path().join("snaps"))
        .unwrap()
        .unpack(&store2, &pulled.manifest)
        .unwrap();

    // A multi-platform index is pushed with its manifests.
    let other = TestImage::new(vec![Layer::gzip(&[Entry::file("arch", b"arm64\n")])]);
    let mut files = images::layout_files(&[(&img, None), (&other, None)]);
    let index = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            { "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": other.manifest_digest(),
              "size": other.manifest.len(), "platform": { "os": "linux", "architecture": "arm64" } },
            { "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": img.manifest_digest(),
              "size": img.manifest.len(), "platform": { "os": "linux", "architecture": "amd64" } },
        ],
    });
    let index = serde_json::to_vec(&index).unwrap();
    files.retain(|(p, _)| p != "index.json");
    files.push((
        format!("blobs/sha256/{}", &images::sha256(&index)[7..]),
        index.clone(),
    ));
    let top = json!({ "schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.index.v1+json", "digest": images::sha256(&index),
        "size": index.len(), "annotations": { "io.containerd.image.name": "localhost/multi:1" } }] });
    files.push(("index.json".into(), serde_json::to_vec(&top).unwrap()));
    let imported = import_archive(&store, &images::tar_of(&files)[..]).unwrap();
    assert_eq!(imported[0].manifest.as_str(), images::sha256(&index));
    let multi = normalize(&format!("{}/multi:1", registry.addr)).unwrap();
    rt().block_on(push(&store, &imported[0].manifest, &multi, &cfg, |_| {}))
        .unwrap();
    let arm = RegistryConfig {
        platform: Some("linux/arm64".into()),
        ..Default::default()
    };
    let pulled = rt().block_on(pull(&store2, &multi, &arm, |_| {})).unwrap();
    assert_eq!(pulled.manifest.as_str(), other.manifest_digest());
    assert_eq!(pulled.index.unwrap().as_str(), images::sha256(&index));
}
