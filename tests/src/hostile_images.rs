//! A corpus of hostile image archives (OCI layouts and docker archives as tars): path escapes,
//! links out of the rootfs, device nodes, truncated or lying blobs, oversized metadata. Each
//! case names the text its rejection must contain. Used by tests/tests/images_hostile.rs (the
//! library) and tests/tests/security_battery_api.rs (berthd's import and pull).

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::images::{self, layout_files, tar_of, Entry, Kind, Layer, TestImage};

/// A host path a hostile archive aims at; must not exist afterwards.
/// The tags of [`target`] paths the corpus aims at.
pub const TARGET_TAGS: [&str; 5] = ["dotdot", "abs", "through", "relsym", "replaced"];

/// Cases whose hostility is in the archive around the image (not in its blobs): a registry
/// push of their blobs makes a harmless image.
pub const ARCHIVE_ONLY: [&str; 4] = [
    "archive entry with ..",
    "huge index.json",
    "docker layer symlink escape",
    "huge pax header in the archive",
];

pub fn target(tag: &str) -> PathBuf {
    PathBuf::from(format!("/tmp/berth-evil-{}-{tag}", std::process::id()))
}

fn rel_to_root(p: &Path) -> String {
    format!("../../../../../../../../..{}", p.display())
}

fn one_layer(entries: Vec<Entry>) -> Vec<u8> {
    let img = TestImage::new(vec![Layer::gzip(&entries)]);
    tar_of(&layout_files(&[(&img, Some("localhost/evil:1"))]))
}

pub struct Case {
    pub name: &'static str,
    pub archive: Vec<u8>,
    /// Text the error must contain.
    pub error: &'static str,
}

pub fn corpus() -> Vec<Case> {
    let t = |tag: &str| target(tag);
    let mut cases = vec![
        Case {
            name: "dotdot file",
            archive: one_layer(vec![Entry::file(&rel_to_root(&t("dotdot")), b"x")]),
            error: "`..` in path",
        },
        Case {
            name: "dotdot inside path",
            archive: one_layer(vec![Entry::file("a/../../../escape", b"x")]),
            error: "`..` in path",
        },
        Case {
            name: "absolute file",
            archive: one_layer(vec![Entry::file(t("abs").to_str().unwrap(), b"x")]),
            error: "absolute path",
        },
        Case {
            name: "symlink then write through it",
            archive: one_layer(vec![
                Entry::symlink("evil", "/tmp"),
                Entry::file(
                    &format!(
                        "evil/{}",
                        t("through").file_name().unwrap().to_str().unwrap()
                    ),
                    b"x",
                ),
            ]),
            error: "symlink",
        },
        Case {
            name: "relative symlink escape then write",
            archive: one_layer(vec![
                Entry::symlink("up", "../../../../../../../../tmp"),
                Entry::file(
                    &format!("up/{}", t("relsym").file_name().unwrap().to_str().unwrap()),
                    b"x",
                ),
            ]),
            error: "symlink",
        },
        Case {
            name: "dir replaced by symlink then written",
            archive: one_layer(vec![
                Entry::dir("d/"),
                Entry::symlink("d", "/tmp"),
                Entry::file(
                    &format!("d/{}", t("replaced").file_name().unwrap().to_str().unwrap()),
                    b"x",
                ),
            ]),
            error: "symlink",
        },
        Case {
            name: "hardlink escape",
            archive: one_layer(vec![Entry::hardlink("h", "../../../../../../etc/passwd")]),
            error: "hardlink target escapes",
        },
        Case {
            name: "absolute hardlink",
            archive: one_layer(vec![Entry::hardlink("h", "/etc/passwd")]),
            error: "hardlink target escapes",
        },
        Case {
            name: "hardlink through a symlink",
            archive: one_layer(vec![
                Entry::symlink("s", "/etc"),
                Entry::hardlink("h", "s/passwd"),
            ]),
            error: "symlink",
        },
        Case {
            name: "char device",
            archive: one_layer(vec![Entry::device("null", Kind::Char, 1, 3)]),
            error: "device nodes are not allowed",
        },
        Case {
            name: "block device",
            archive: one_layer(vec![Entry::device("sda", Kind::Block, 8, 0)]),
            error: "device nodes are not allowed",
        },
        Case {
            name: "bad whiteout name",
            archive: one_layer(vec![Entry::file(".wh..", b"")]),
            error: "bad whiteout name",
        },
    ];

    // A truncated gzip layer (the manifest describes the truncated blob exactly).
    let mut layer = Layer::gzip(&[
        Entry::file("big", &vec![b'z'; 200_000]),
        Entry::file("after", b"y"),
    ]);
    layer.blob.truncate(layer.blob.len() / 2);
    let img = TestImage::new(vec![layer]);
    cases.push(Case {
        name: "truncated gzip",
        archive: tar_of(&layout_files(&[(&img, None)])),
        error: "layer",
    });

    // A tar whose entry declares more data than there is.
    let mut short = Entry::file("short", b"only a little");
    short.declared_size = Some(1 << 20);
    let tar = images::layer_tar(&[short]);
    let tar = tar[..tar.len() - 1024].to_vec();
    let layer = Layer {
        diff_id: images::sha256(&tar),
        blob: tar,
        media_type: "application/vnd.oci.image.layer.v1.tar".into(),
    };
    cases.push(Case {
        name: "truncated tar entry",
        archive: tar_of(&layout_files(&[(&TestImage::new(vec![layer]), None)])),
        error: "layer",
    });

    // A blob whose content does not match its name.
    let img = TestImage::new(vec![Layer::gzip(&[Entry::file("f", b"x")])]);
    let mut files = layout_files(&[(&img, None)]);
    let blob = files
        .iter_mut()
        .find(|(p, _)| {
            p.starts_with("blobs/") && p.ends_with(&images::sha256(&img.layers[0].blob)[7..])
        })
        .unwrap();
    blob.1[20] ^= 0xff;
    cases.push(Case {
        name: "digest mismatch",
        archive: tar_of(&files),
        error: "content mismatch",
    });

    // A manifest naming a blob the archive lacks.
    let mut files = layout_files(&[(&img, None)]);
    let layer_name = format!("blobs/sha256/{}", &images::sha256(&img.layers[0].blob)[7..]);
    files.retain(|(p, _)| *p != layer_name);
    cases.push(Case {
        name: "missing blob",
        archive: tar_of(&files),
        error: "not found",
    });

    // A manifest declaring an absurd layer size.
    let mut huge = img.clone();
    huge.manifest = img.manifest_with(|m| m["layers"][0]["size"] = serde_json::json!(1u64 << 50));
    cases.push(Case {
        name: "huge declared size",
        archive: tar_of(&layout_files(&[(&huge, None)])),
        error: "content mismatch",
    });

    // A config whose diff ID does not match the layer.
    let mut wrong = TestImage::new(vec![Layer::gzip(&[Entry::file("f", b"x")])]);
    wrong.layers[0].diff_id = images::sha256(b"something else");
    let wrong = TestImage::new(wrong.layers.clone());
    cases.push(Case {
        name: "diff id mismatch",
        archive: tar_of(&layout_files(&[(&wrong, None)])),
        error: "unpacks to",
    });

    // Too many layers.
    let many: Vec<Layer> = (0..129)
        .map(|i| Layer::plain(&[Entry::file(&format!("f{i}"), b"x")]))
        .collect();
    cases.push(Case {
        name: "too many layers",
        archive: tar_of(&layout_files(&[(&TestImage::new(many), None)])),
        error: "more than 128",
    });

    // An archive entry outside the layout.
    let mut files = layout_files(&[(&img, None)]);
    files.push(("../../escape.json".into(), b"{}".to_vec()));
    let mut b = tar::Builder::new(Vec::new());
    for (path, data) in &files {
        let mut h = tar::Header::new_gnu();
        h.as_gnu_mut().unwrap().name[..path.len()].copy_from_slice(path.as_bytes());
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        h.set_cksum();
        b.append(&h, &data[..]).unwrap();
    }
    cases.push(Case {
        name: "archive entry with ..",
        archive: b.into_inner().unwrap(),
        error: "`..` in path",
    });

    // An oversized index.json.
    let mut files = layout_files(&[(&img, None)]);
    files.retain(|(p, _)| p != "index.json");
    files.push(("index.json".into(), vec![b' '; 9 << 20]));
    cases.push(Case {
        name: "huge index.json",
        archive: tar_of(&files),
        error: "larger than",
    });

    // A docker archive whose layer is a symlink out of the archive.
    let mut b = tar::Builder::new(Vec::new());
    let manifest = br#"[{"Config":"c.json","RepoTags":["evil:1"],"Layers":["l/layer.tar"]}]"#;
    let config = serde_json::to_vec(&serde_json::json!({"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[images::sha256(b"")]}})).unwrap();
    for (path, data) in [("manifest.json", &manifest[..]), ("c.json", &config[..])] {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, path, data).unwrap();
    }
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Symlink);
    h.set_size(0);
    b.append_link(&mut h, "l/layer.tar", "../../../etc/passwd")
        .unwrap();
    cases.push(Case {
        name: "docker layer symlink escape",
        archive: b.into_inner().unwrap(),
        error: "symlink escapes",
    });
    // A 16 MiB GNU long name (the tar crate would read it whole into memory).
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::GNULongName);
    h.set_path("././@LongLink").unwrap();
    h.set_size(16 << 20);
    h.set_cksum();
    b.append(&h, std::io::repeat(b'a').take(16 << 20)).unwrap();
    let mut h = tar::Header::new_gnu();
    h.set_size(1);
    b.append_data(&mut h, "f", &b"x"[..]).unwrap();
    let tar = b.into_inner().unwrap();
    let layer = Layer {
        diff_id: images::sha256(&tar),
        blob: images::gzip(&tar),
        media_type: "application/vnd.oci.image.layer.v1.tar+gzip".into(),
    };
    cases.push(Case {
        name: "huge long name in a layer",
        archive: tar_of(&layout_files(&[(&TestImage::new(vec![layer]), None)])),
        error: "tar metadata entry",
    });

    // A 16 MiB PAX header in the archive itself (gzipped).
    let mut b = tar::Builder::new(Vec::new());
    let value = vec![b'v'; 16 << 20];
    b.append_pax_extensions([("comment", &value[..])]).unwrap();
    let mut h = tar::Header::new_gnu();
    h.set_size(2);
    b.append_data(&mut h, "index.json", &b"{}"[..]).unwrap();
    cases.push(Case {
        name: "huge pax header in the archive",
        archive: images::gzip(&b.into_inner().unwrap()),
        error: "tar metadata entry",
    });
    cases
}
