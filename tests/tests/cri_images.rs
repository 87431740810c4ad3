//! CRI v1 ImageService on berthd against a real registry (Debian's docker-registry on
//! loopback, behind the suite's authenticating proxy): pulls with each kind of request
//! credentials, through `[cri.registry]` mirrors (with short-name normalisation), list with
//! filters, status by id / name / digest with verbose info, uid and user name, removal twice,
//! image fs info, and the error codes.

use std::collections::HashMap;
use std::path::Path;

use berth_tests::cri::{connect, Cri};
use berth_tests::daemon::DaemonGuard;
use berth_tests::images::{self, busybox_image_gzip, TestImage};
use berth_tests::images_registry::{
    AuthMode, AuthProxy, Registry, PROXY_REFRESH_TOKEN, PROXY_TOKEN, PROXY_USER,
};
use k8s_cri::v1::{
    AuthConfig, ImageFilter, ImageFsInfoRequest, ImageSpec, ImageStatusRequest, ListImagesRequest,
    PullImageRequest, RemoveImageRequest,
};
use tonic::Code;

fn spec(image: &str) -> Option<ImageSpec> {
    Some(ImageSpec {
        image: image.to_string(),
        ..Default::default()
    })
}

async fn pull(
    cri: &mut Cri,
    image: &str,
    auth: Option<AuthConfig>,
) -> Result<String, tonic::Status> {
    cri.images
        .pull_image(PullImageRequest {
            image: spec(image),
            auth,
            sandbox_config: None,
        })
        .await
        .map(|r| r.into_inner().image_ref)
}

async fn status(cri: &mut Cri, image: &str, verbose: bool) -> k8s_cri::v1::ImageStatusResponse {
    cri.images
        .image_status(ImageStatusRequest {
            image: spec(image),
            verbose,
        })
        .await
        .unwrap_or_else(|e| panic!("status {image}: {e}"))
        .into_inner()
}

async fn list(cri: &mut Cri, filter: &str) -> Vec<k8s_cri::v1::Image> {
    let filter = (!filter.is_empty()).then(|| ImageFilter {
        image: spec(filter),
    });
    cri.images
        .list_images(ListImagesRequest { filter })
        .await
        .unwrap()
        .into_inner()
        .images
}

async fn remove(cri: &mut Cri, image: &str) -> Result<(), tonic::Status> {
    cri.images
        .remove_image(RemoveImageRequest { image: spec(image) })
        .await
        .map(|_| ())
}

/// Pushes `img` to `registry` as `repo_tag`.
fn push(registry: &Registry, img: &TestImage, repo_tag: &str) {
    let layout = images::scratch("layout");
    images::write_dir(layout.path(), &images::layout_files(&[(img, Some("t"))]));
    registry.push(layout.path(), "t", repo_tag, false);
}

/// The busybox image with `User` set in its config.
fn with_user(user: &str) -> TestImage {
    let mut img = busybox_image_gzip();
    let mut config: serde_json::Value = serde_json::from_slice(&img.config).unwrap();
    config["config"]["User"] = serde_json::json!(user);
    img.config = serde_json::to_vec(&config).unwrap();
    img.manifest = img.manifest_with(|_| {});
    img
}

fn daemon_with_config(dir: &Path, toml: &str) -> DaemonGuard {
    let path = dir.join("berthd.toml");
    std::fs::write(&path, toml).unwrap();
    DaemonGuard::start_with(&["--config", path.to_str().unwrap()])
}

#[tokio::test]
async fn pull_with_request_credentials_list_status_remove() {
    let registry = Registry::start();
    let img = busybox_image_gzip();
    push(&registry, &img, "busybox:test");
    let config_digest = images::sha256(&img.config);
    let manifest = img.manifest_digest();
    let basic = AuthProxy::start(&registry.addr, AuthMode::Basic);
    let bearer = AuthProxy::start(&registry.addr, AuthMode::Bearer);
    let d = DaemonGuard::start();
    let mut cri = connect(&d.socket).await;

    // No credentials: refused, nothing recorded.
    let name = format!("{}/busybox:test", basic.addr);
    let err = pull(&mut cri, &name, None).await.unwrap_err();
    assert!(err.message().contains("credentials required"), "{err:?}");
    assert!(list(&mut cri, "").await.is_empty());
    // Credentials for another registry are not sent.
    let elsewhere = AuthConfig {
        username: PROXY_USER.0.into(),
        password: PROXY_USER.1.into(),
        server_address: "https://other.example".into(),
        ..Default::default()
    };
    assert!(pull(&mut cri, &name, Some(elsewhere)).await.is_err());

    // Username and password.
    let user_pass = AuthConfig {
        username: PROXY_USER.0.into(),
        password: PROXY_USER.1.into(),
        server_address: basic.addr.clone(),
        ..Default::default()
    };
    let id = pull(&mut cri, &name, Some(user_pass)).await.unwrap();
    assert_eq!(id, config_digest);
    // `auth` (base64 of user:pass).
    let auth = AuthConfig {
        auth: "dXNlcjpwYXNz".into(),
        ..Default::default()
    };
    assert_eq!(pull(&mut cri, &name, Some(auth)).await.unwrap(), id);
    let bad = AuthConfig {
        auth: "not base64!".into(),
        ..Default::default()
    };
    let err = pull(&mut cri, &name, Some(bad)).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    // A bearer registry: a registry token used as is, and user/password for a token.
    let bearer_name = format!("{}/busybox:test", bearer.addr);
    let token = AuthConfig {
        registry_token: PROXY_TOKEN.into(),
        ..Default::default()
    };
    assert_eq!(pull(&mut cri, &bearer_name, Some(token)).await.unwrap(), id);
    // An identity token: an OAuth2 refresh token exchanged at the token endpoint.
    let identity = AuthConfig {
        identity_token: PROXY_REFRESH_TOKEN.into(),
        ..Default::default()
    };
    let before = bearer.tokens.load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(
        pull(&mut cri, &bearer_name, Some(identity)).await.unwrap(),
        id
    );
    assert!(bearer.tokens.load(std::sync::atomic::Ordering::SeqCst) > before);
    let wrong = AuthConfig {
        identity_token: "wrong".into(),
        ..Default::default()
    };
    assert!(pull(&mut cri, &bearer_name, Some(wrong)).await.is_err());
    let err = pull(&mut cri, &bearer_name, None).await.unwrap_err();
    assert!(err.message().contains("401"), "{err:?}");

    // One image with two names.
    let all = list(&mut cri, "").await;
    assert_eq!(all.len(), 1, "{all:?}");
    let image = &all[0];
    assert_eq!(image.id, id);
    let mut tags = vec![name.clone(), bearer_name.clone()];
    tags.sort();
    assert_eq!(image.repo_tags, tags);
    let mut digests = vec![
        format!("{}/busybox@{manifest}", basic.addr),
        format!("{}/busybox@{manifest}", bearer.addr),
    ];
    digests.sort();
    assert_eq!(image.repo_digests, digests);
    assert!(image.size > 0);
    assert_eq!(image.spec.as_ref().unwrap().image, id);
    assert!(image.uid.is_none() && image.username.is_empty());
    assert!(!image.pinned);

    // Found by id, bare hex, tag, digest reference and manifest digest.
    let by_digest = format!("{}/busybox@{manifest}", basic.addr);
    for key in [
        id.clone(),
        id.trim_start_matches("sha256:").to_string(),
        name.clone(),
        by_digest.clone(),
        manifest.clone(),
    ] {
        let st = status(&mut cri, &key, false).await;
        assert_eq!(st.image.map(|i| i.id), Some(id.clone()), "{key}");
        assert!(st.info.is_empty());
        assert_eq!(list(&mut cri, &key).await.len(), 1, "{key}");
    }
    // Verbose: containerd-style JSON with the chain ID and the image config.
    let st = status(&mut cri, &name, true).await;
    let info: serde_json::Value = serde_json::from_str(&st.info["info"]).unwrap();
    assert!(
        info["chainID"].as_str().unwrap().starts_with("sha256:"),
        "{info}"
    );
    assert_eq!(info["manifestDigest"], manifest.as_str());
    assert_eq!(info["imageSpec"]["config"]["Cmd"][0], "/bin/sh");

    // Missing images: no image, no error; bad names: InvalidArgument; a missing tag in the
    // registry: NotFound.
    for missing in [
        "busybox",
        "sha256:0000000000000000000000000000000000000000000000000000000000000000",
    ] {
        assert!(
            status(&mut cri, missing, false).await.image.is_none(),
            "{missing}"
        );
        assert!(list(&mut cri, missing).await.is_empty());
    }
    for bad in ["", "Bad//Name", "sha256:123"] {
        let err = cri
            .images
            .image_status(ImageStatusRequest {
                image: spec(bad),
                verbose: false,
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{bad}: {err:?}");
    }
    // (`sha256:123` is a valid reference to pull: docker.io/library/sha256:123.)
    for bad in ["", "Bad//Name"] {
        let err = pull(&mut cri, bad, None).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{bad}: {err:?}");
    }
    let err = pull(&mut cri, &format!("{}/busybox:nope", registry.addr), None)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound, "{err:?}");

    // The image filesystem holds the unpacked layers.
    let fs = cri
        .images
        .image_fs_info(ImageFsInfoRequest {})
        .await
        .unwrap()
        .into_inner();
    let usage = &fs.image_filesystems[0];
    assert!(
        usage.used_bytes.as_ref().unwrap().value > 100_000,
        "{usage:?}"
    );
    assert!(usage.inodes_used.as_ref().unwrap().value > 5, "{usage:?}");
    let mountpoint = &usage.fs_id.as_ref().unwrap().mountpoint;
    assert!(
        mountpoint.starts_with(&d.root().display().to_string()),
        "{mountpoint}"
    );
    assert!(usage.timestamp > 0);
    assert_eq!(fs.container_filesystems.len(), 1);

    // It is in berthd's k8s.io namespace, and runs by ID (what kubelet passes to
    // CreateContainer) and by digest reference.
    let out = d.run(&["-n", "k8s.io", "images"]);
    assert!(
        berth_tests::daemon::text(&out).contains("busybox"),
        "{out:?}"
    );
    for image in [&id, &by_digest] {
        let out = d.run(&[
            "-n",
            "k8s.io",
            "run",
            "--rm",
            "--network",
            "none",
            image,
            "cat",
            "/opt/lower/c",
        ]);
        assert!(out.status.success(), "{image}: {out:?}");
        assert_eq!(berth_tests::daemon::text(&out).trim(), "c");
    }

    // Removal by one name removes every name; again succeeds; the blobs are collected.
    remove(&mut cri, &by_digest).await.unwrap();
    assert!(status(&mut cri, &id, false).await.image.is_none());
    assert!(list(&mut cri, "").await.is_empty());
    remove(&mut cri, &by_digest).await.unwrap();
    remove(&mut cri, &id).await.unwrap();
    let err = remove(&mut cri, "").await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let blobs = std::fs::read_dir(d.root().join("content/blobs/sha256"))
        .map(|r| r.count())
        .unwrap_or(0);
    assert_eq!(blobs, 0);
}

#[tokio::test]
async fn mirrors_short_names_and_image_users() {
    let registry = Registry::start();
    let img = busybox_image_gzip();
    // What `busybox` means: docker.io/library/busybox:latest, served by the mirror.
    push(&registry, &img, "library/busybox:latest");
    push(&registry, &with_user("1000:1000"), "library/busybox:uid");
    push(&registry, &with_user("nobody"), "library/busybox:named");
    let dir = images::scratch("cri-config");
    let d = daemon_with_config(
        dir.path(),
        &format!(
            "[cri.registry.mirrors.\"docker.io\"]\nendpoints = [\"http://127.0.0.1:1\", \"http://{0}\"]\n\
             [cri.registry.mirrors.\"mirror.test\"]\nendpoint = [\"http://{0}\"]\n",
            registry.addr
        ),
    );
    let mut cri = connect(&d.socket).await;

    let id = pull(&mut cri, "busybox", None).await.unwrap();
    assert_eq!(id, images::sha256(&img.config));
    let image = status(&mut cri, "busybox", false).await.image.unwrap();
    assert_eq!(image.repo_tags, ["docker.io/library/busybox:latest"]);
    assert_eq!(
        image.repo_digests,
        [format!(
            "docker.io/library/busybox@{}",
            img.manifest_digest()
        )]
    );
    for alias in [
        "busybox:latest",
        "library/busybox",
        "docker.io/library/busybox:latest",
    ] {
        assert_eq!(
            status(&mut cri, alias, false).await.image.map(|i| i.id),
            Some(id.clone())
        );
    }
    // By digest through the mirror.
    let by_digest = format!("busybox@{}", img.manifest_digest());
    assert_eq!(pull(&mut cri, &by_digest, None).await.unwrap(), id);
    // A second mirrored host (containerd's `endpoint` spelling): same image, another tag.
    assert_eq!(
        pull(&mut cri, "mirror.test/library/busybox:latest", None)
            .await
            .unwrap(),
        id
    );
    assert_eq!(list(&mut cri, "").await.len(), 1);
    let image = status(&mut cri, &id, false).await.image.unwrap();
    assert_eq!(
        image.repo_tags,
        [
            "docker.io/library/busybox:latest",
            "mirror.test/library/busybox:latest"
        ]
    );

    // uid and user name from the image config.
    let uid_id = pull(&mut cri, "busybox:uid", None).await.unwrap();
    let image = status(&mut cri, &uid_id, false).await.image.unwrap();
    assert_eq!(image.uid.map(|u| u.value), Some(1000));
    assert!(image.username.is_empty());
    pull(&mut cri, "busybox:named", None).await.unwrap();
    let image = status(&mut cri, "busybox:named", false)
        .await
        .image
        .unwrap();
    assert!(image.uid.is_none());
    assert_eq!(image.username, "nobody");
    assert_eq!(list(&mut cri, "").await.len(), 3);

    // A host without a mirror is not reachable here: the pull fails, nothing is recorded.
    assert!(pull(&mut cri, "quay.io/none/none:x", None).await.is_err());
    let ids: HashMap<String, Vec<String>> = list(&mut cri, "")
        .await
        .into_iter()
        .map(|i| (i.id, i.repo_tags))
        .collect();
    assert_eq!(ids.len(), 3, "{ids:?}");
    for i in ids.keys() {
        remove(&mut cri, i).await.unwrap();
    }
    assert!(list(&mut cri, "").await.is_empty());
}
