//! A busybox root filesystem for test containers.
//!
//! Built once from the host's static busybox (Debian's busybox-static, `/bin/busybox`) into a
//! cache directory named after the binary's size and mtime (so every test binary and every run
//! shares it), then populated into each test's bundle: busybox hard-linked (copied across
//! filesystems), everything else copied or recreated.

use std::fs;
use std::io;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The host's static busybox.
pub const BUSYBOX: &str = "/bin/busybox";

/// A file only test rootfses have: scripts check it before writing anything, so a runtime
/// that failed to switch roots cannot make them write on the host.
pub const SENTINEL: &str = ".berth-test-rootfs";

/// Cache layout version (bump when the rootfs contents change).
const VERSION: u32 = 2;

const PASSWD: &str =
    "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n";
const GROUP: &str = "root:x:0:\ntty:x:5:\nnogroup:x:65534:\n";

static CACHE: OnceLock<PathBuf> = OnceLock::new();

/// The cached rootfs, built on first use.
pub fn cached() -> &'static Path {
    CACHE.get_or_init(|| build_cache().expect("building the busybox rootfs cache"))
}

/// Fills `dest` (created if missing) with a busybox rootfs.
pub fn populate(dest: &Path) -> io::Result<()> {
    copy_tree(cached(), dest)
}

fn build_cache() -> io::Result<PathBuf> {
    let meta = fs::metadata(BUSYBOX).map_err(|err| {
        io::Error::new(
            err.kind(),
            format!("{BUSYBOX}: {err} (install busybox-static: scripts/setup-deps)"),
        )
    })?;
    let base = std::env::temp_dir().join("berth-test-cache");
    fs::create_dir_all(&base)?;
    let final_dir = base.join(format!(
        "busybox-v{VERSION}-{}-{}",
        meta.len(),
        meta.mtime()
    ));
    if final_dir.join("bin/busybox").is_file() {
        return Ok(final_dir);
    }
    let work = base.join(format!(".build-{}", std::process::id()));
    let _ = fs::remove_dir_all(&work);
    build_into(&work)?;
    match fs::rename(&work, &final_dir) {
        Ok(()) => Ok(final_dir),
        // Another test binary finished first: use its copy.
        Err(_) if final_dir.join("bin/busybox").is_file() => {
            let _ = fs::remove_dir_all(&work);
            Ok(final_dir)
        }
        Err(err) => Err(err),
    }
}

fn build_into(root: &Path) -> io::Result<()> {
    for dir in [
        "bin", "proc", "sys", "dev", "tmp", "etc", "root", "var", "run",
    ] {
        fs::create_dir_all(root.join(dir))?;
    }
    fs::set_permissions(root.join("tmp"), fs::Permissions::from_mode(0o1777))?;
    fs::set_permissions(root, fs::Permissions::from_mode(0o755))?;
    fs::copy(BUSYBOX, root.join("bin/busybox"))?;
    let list = Command::new(BUSYBOX).arg("--list").output()?;
    if !list.status.success() {
        return Err(io::Error::other("busybox --list failed"));
    }
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        let applet = applet.trim();
        if applet.is_empty() || applet == "busybox" || applet.contains('/') {
            continue;
        }
        symlink("busybox", root.join("bin").join(applet))?;
    }
    fs::write(root.join("etc/passwd"), PASSWD)?;
    fs::write(root.join("etc/group"), GROUP)?;
    fs::write(root.join("etc/hostname"), "berth\n")?;
    fs::write(root.join(SENTINEL), "")?;
    Ok(())
}

/// Copies `src` into `dest`: directories recreated with their modes, symlinks recreated,
/// `bin/busybox` hard-linked when possible, other files copied.
fn copy_tree(src: &Path, dest: &Path) -> io::Result<()> {
    fs::create_dir_all(dest)?;
    fs::set_permissions(dest, fs::metadata(src)?.permissions())?;
    for entry in fs::read_dir(src)? {
        let entry = entry?;
        let from = entry.path();
        let to = dest.join(entry.file_name());
        let kind = entry.file_type()?;
        if kind.is_dir() {
            copy_tree(&from, &to)?;
        } else if kind.is_symlink() {
            symlink(fs::read_link(&from)?, &to)?;
        } else if entry.file_name() == "busybox" {
            if fs::hard_link(&from, &to).is_err() {
                fs::copy(&from, &to)?;
            }
        } else {
            fs::copy(&from, &to)?;
        }
    }
    Ok(())
}
