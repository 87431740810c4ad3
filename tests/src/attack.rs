//! The security battery's tools: the `attack` helper (tests/attack/attack.c, raw syscalls busybox
//! cannot make), built static with gcc once per source version; a test image holding busybox
//! with all its applets, `attack` and a setuid-root copy of it; and a berthd shared by the tests
//! of one file, with that image imported.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex, OnceLock, Weak};

use crate::daemon::{err_text, text, DaemonGuard};
use crate::images::{layout_files, sha256, tar_of, Entry, Layer, TestImage};
use crate::rootfs::{BUSYBOX, SENTINEL};

const SOURCE: &str = include_str!("../attack/attack.c");

/// The image name every battery daemon imports the battery image as.
pub const IMAGE: &str = "battery:1";

/// The uid of the unprivileged user in the battery image.
pub const USER: u32 = 1000;

static BINARY: OnceLock<PathBuf> = OnceLock::new();

/// The static `attack` binary, compiled on first use into a cache dir named after its source.
pub fn binary() -> &'static Path {
    BINARY.get_or_init(|| {
        let dir = std::env::temp_dir().join("berth-test-cache");
        std::fs::create_dir_all(&dir).expect("cache dir");
        let hash = &sha256(SOURCE.as_bytes())[7..23];
        let out = dir.join(format!("attack-{hash}"));
        if out.is_file() {
            return out;
        }
        let src = dir.join(format!(".attack-{}.c", std::process::id()));
        let tmp = dir.join(format!(".attack-{}", std::process::id()));
        std::fs::write(&src, SOURCE).expect("writing attack.c");
        let o = Command::new("gcc")
            .args(["-static", "-O1", "-Wall", "-o"])
            .arg(&tmp)
            .arg(&src)
            .output()
            .expect("gcc (apt-get install gcc libc6-dev)");
        assert!(
            o.status.success(),
            "gcc -static attack.c: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let _ = std::fs::remove_file(&src);
        std::fs::rename(&tmp, &out).expect("renaming the attack binary");
        out
    })
}

/// The battery image's entries: busybox and a symlink per applet, `attack` (0755) and
/// `attack-suid` (setuid root), users root, nobody and 1000, the test-rootfs marker.
pub fn base_entries() -> Vec<Entry> {
    let busybox = std::fs::read(BUSYBOX).expect("read /bin/busybox");
    let attack = std::fs::read(binary()).expect("read the attack binary");
    let mut entries = vec![
        Entry::dir("bin/"),
        Entry::file("bin/busybox", &busybox).mode(0o755),
        Entry::file("bin/attack", &attack).mode(0o755),
        Entry::file("bin/attack-suid", &attack)
            .mode(0o4755)
            .owner(0, 0),
        Entry::dir("etc/"),
        Entry::file(
            "etc/passwd",
            b"root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000:user:/tmp:/bin/sh\n\
              nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
        ),
        Entry::file("etc/group", b"root:x:0:\nuser:x:1000:\nnogroup:x:65534:\n"),
        Entry::file("etc/hostname", b"battery\n"),
        Entry::file(SENTINEL, b""),
        Entry::dir("tmp/").mode(0o1777),
        Entry::dir("root/").mode(0o700),
        Entry::dir("mnt/"),
    ];
    let list = Command::new(BUSYBOX)
        .arg("--list")
        .output()
        .expect("busybox --list");
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        let applet = applet.trim();
        if applet.is_empty() || applet == "busybox" || applet.contains('/') || applet.len() > 40 {
            continue;
        }
        entries.push(Entry::symlink(&format!("bin/{applet}"), "busybox"));
    }
    entries
}

/// An OCI layout tar of the battery image plus `extra` entries (a second layer) named `name`.
pub fn image_tar(name: &str, extra: Vec<Entry>) -> Vec<u8> {
    let mut layers = vec![Layer::gzip(&base_entries())];
    if !extra.is_empty() {
        layers.push(Layer::gzip(&extra));
    }
    let img = TestImage::new(layers);
    tar_of(&layout_files(&[(&img, Some(name))]))
}

/// A berthd with the battery image imported.
pub struct Battery {
    pub d: DaemonGuard,
}

static SHARED: Mutex<Weak<Battery>> = Mutex::new(Weak::new());

impl Battery {
    /// A fresh daemon with the image imported.
    pub fn start() -> Battery {
        let d = DaemonGuard::start();
        let b = Battery { d };
        b.import(IMAGE, Vec::new());
        b
    }

    /// The daemon shared by the tests running now in this test binary: created by the first,
    /// stopped (and checked clean) when the last one drops its handle.
    pub fn shared() -> Arc<Battery> {
        let mut weak = SHARED.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(b) = weak.upgrade() {
            return b;
        }
        let b = Arc::new(Battery::start());
        *weak = Arc::downgrade(&b);
        b
    }

    /// Imports the battery image plus `extra` as `name`.
    pub fn import(&self, name: &str, extra: Vec<Entry>) {
        let path = self
            .d
            .dir
            .path()
            .join(format!("img-{}.tar", name.replace([':', '/'], "_")));
        std::fs::write(&path, image_tar(name, extra)).expect("writing the image tar");
        let o = self
            .d
            .run(&["import", "--name", name, path.to_str().expect("utf-8 path")]);
        assert!(o.status.success(), "import: {}{}", text(&o), err_text(&o));
        let _ = std::fs::remove_file(&path);
    }

    /// `berthctl run --rm --network none <flags> IMAGE <cmd>`: default settings otherwise.
    pub fn run(&self, flags: &[&str], cmd: &[&str]) -> Output {
        self.run_image(IMAGE, flags, cmd)
    }

    pub fn run_image(&self, image: &str, flags: &[&str], cmd: &[&str]) -> Output {
        let mut args = vec!["run", "--rm", "--network", "none"];
        args.extend_from_slice(flags);
        args.push(image);
        args.extend_from_slice(cmd);
        self.d.run(&args)
    }

    /// A `sh -c script` run; returns (stdout, stderr, exit code).
    pub fn sh(&self, flags: &[&str], script: &str) -> (String, String, i32) {
        let o = self.run(flags, &["sh", "-c", script]);
        (text(&o), err_text(&o), o.status.code().unwrap_or(-1))
    }

    /// `attack <case> <args>` in a default container; the line it printed for the case.
    pub fn attack(&self, flags: &[&str], case: &[&str]) -> String {
        let mut cmd = vec!["/bin/attack"];
        cmd.extend_from_slice(case);
        let o = self.run(flags, &cmd);
        let out = text(&o);
        let line = out
            .lines()
            .find(|l| l.starts_with(&format!("{}: ", case[0])))
            .unwrap_or_else(|| {
                panic!(
                    "attack {case:?} printed no result: {out}{} (exit {:?})",
                    err_text(&o),
                    o.status.code()
                )
            });
        line.to_string()
    }
}

/// Asserts an attack line reports one of `errnos` (and so did not succeed).
pub fn assert_refused(line: &str, errnos: &[&str]) {
    assert!(!line.ends_with(": ok"), "the attack succeeded: {line}");
    assert!(
        errnos.iter().any(|e| line.contains(&format!("errno={e} "))),
        "refused with an unexpected errno (wanted {errnos:?}): {line}"
    );
}

/// A host file's identity and change times (inode, size, mtime, ctime): any write changes
/// them, and ctime cannot be set back from inside a container. Cheap for big debug binaries.
pub fn fingerprint(path: &Path) -> String {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    format!(
        "{} {} {} {}.{} {}.{}",
        m.dev(),
        m.ino(),
        m.size(),
        m.mtime(),
        m.mtime_nsec(),
        m.ctime(),
        m.ctime_nsec()
    )
}

/// sha256 of a host file, for before/after comparisons.
pub fn file_hash(path: &Path) -> String {
    sha256(&std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
}

/// Every path under `dir` with its size and mode (symlinks not followed), sorted.
pub fn tree_snapshot(dir: &Path) -> Vec<String> {
    use std::os::unix::fs::MetadataExt;
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if let Ok(m) = std::fs::symlink_metadata(&p) {
                out.push(format!("{} {:o}", p.display(), m.mode()));
                if m.is_dir() {
                    stack.push(p);
                }
            }
        }
    }
    out.sort();
    out
}
