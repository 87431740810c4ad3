//! Reading and writing cgroup control files, and walking cgroup directory trees.

use std::fs::OpenOptions;
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::thread::sleep;
use std::time::{Duration, Instant};

use super::CgroupError;

/// Maps an I/O error on `path` into a [`CgroupError::Io`].
pub(crate) fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> CgroupError + '_ {
    move |source| CgroupError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Writes `value` to the control file `dir/file` in a single `write(2)`.
///
/// The file must exist (control files are never created), so a typo or a missing controller
/// shows up as `ENOENT` on that path.
pub(crate) fn write(dir: &Path, file: &str, value: &str) -> Result<(), CgroupError> {
    let path = dir.join(file);
    let mut f = OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(&path)
        .map_err(io_err(&path))?;
    f.write_all(value.as_bytes()).map_err(io_err(&path))
}

/// Reads the control file `dir/file`, trimmed.
pub(crate) fn read(dir: &Path, file: &str) -> Result<String, CgroupError> {
    let path = dir.join(file);
    let s = std::fs::read_to_string(&path).map_err(io_err(&path))?;
    Ok(s.trim().to_string())
}

/// Like [`read`], but a missing file is `None`.
pub(crate) fn read_opt(dir: &Path, file: &str) -> Result<Option<String>, CgroupError> {
    let path = dir.join(file);
    match std::fs::read_to_string(&path) {
        Ok(s) => Ok(Some(s.trim().to_string())),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err(&path)(e)),
    }
}

/// Reads a control file holding one unsigned number.
pub(crate) fn read_u64(dir: &Path, file: &str) -> Result<u64, CgroupError> {
    let s = read(dir, file)?;
    s.parse().map_err(|_| {
        CgroupError::Other(format!("{}: not a number: {s:?}", dir.join(file).display()))
    })
}

/// Like [`read_u64`], but a missing file is `None`.
pub(crate) fn read_u64_opt(dir: &Path, file: &str) -> Result<Option<u64>, CgroupError> {
    match read_opt(dir, file)? {
        None => Ok(None),
        Some(s) => s.parse().map(Some).map_err(|_| {
            CgroupError::Other(format!("{}: not a number: {s:?}", dir.join(file).display()))
        }),
    }
}

/// Checks that `s` can be used inside a control file name (a huge page size, a key of the
/// unified map) without naming a file elsewhere.
pub(crate) fn name_part<'a>(what: &str, s: &'a str) -> Result<&'a str, CgroupError> {
    if s.is_empty() || s == "." || s == ".." || s.contains(['/', '\0']) {
        Err(CgroupError::Other(format!("invalid {what} {s:?}")))
    } else {
        Ok(s)
    }
}

/// Whether the control file `dir/file` exists.
pub(crate) fn exists(dir: &Path, file: &str) -> bool {
    dir.join(file).exists()
}

/// Creates `dir` and its parents; returns the directories that did not exist before, outermost
/// first.
///
/// A shared parent (e.g. `/berth`) may be removed by someone cleaning up between our mkdir of it
/// and of its child; the child's mkdir then fails with ENOENT and the whole walk is retried.
pub(crate) fn mkdir_all(dir: &Path) -> Result<Vec<PathBuf>, CgroupError> {
    let mut created = Vec::new();
    let mut attempts = 0;
    loop {
        attempts += 1;
        match mkdir_missing(dir, &mut created) {
            Err(CgroupError::Io { source, .. })
                if source.kind() == ErrorKind::NotFound && attempts < 10 => {}
            Err(e) => return Err(e),
            Ok(()) => {
                return Ok(created);
            }
        }
    }
}

fn mkdir_missing(dir: &Path, created: &mut Vec<PathBuf>) -> Result<(), CgroupError> {
    let mut missing = Vec::new();
    let mut cur = Some(dir);
    while let Some(d) = cur {
        if d.is_dir() {
            break;
        }
        missing.push(d.to_path_buf());
        cur = d.parent();
    }
    missing.reverse();
    for d in missing {
        match std::fs::create_dir(&d) {
            Ok(()) => {
                if !created.contains(&d) {
                    created.push(d);
                }
            }
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io_err(&d)(e)),
        }
    }
    Ok(())
}

/// Every pid in `cgroup.procs` of `dir` and of all its descendants.
pub(crate) fn procs_recursive(dir: &Path) -> Result<Vec<i32>, CgroupError> {
    let mut pids = Vec::new();
    collect_procs(dir, &mut pids)?;
    pids.sort_unstable();
    pids.dedup();
    Ok(pids)
}

fn collect_procs(dir: &Path, pids: &mut Vec<i32>) -> Result<(), CgroupError> {
    for line in read(dir, "cgroup.procs")?.lines() {
        if let Ok(pid) = line.trim().parse() {
            pids.push(pid);
        }
    }
    for sub in subdirs(dir)? {
        collect_procs(&sub, pids)?;
    }
    Ok(())
}

fn subdirs(dir: &Path) -> Result<Vec<PathBuf>, CgroupError> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io_err(dir))? {
        let entry = entry.map_err(io_err(dir))?;
        if entry.file_type().map_err(io_err(dir))?.is_dir() {
            out.push(entry.path());
        }
    }
    Ok(out)
}

/// Removes the cgroup `dir` and every child cgroup below it, deepest first.
///
/// A missing directory is fine. Most cgroups have no children, so `rmdir` comes first and the
/// directory (dozens of control files) is listed only when that is refused. `rmdir` is then
/// retried for about a second on `EBUSY`, which the kernel returns while the last processes of
/// a cgroup are still exiting.
pub(crate) fn remove_tree(dir: &Path) -> Result<(), CgroupError> {
    match std::fs::remove_dir(dir) {
        Ok(()) => return Ok(()),
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        // EBUSY: child cgroups or exiting processes; ENOTEMPTY: a plain directory tree.
        Err(e) if matches!(e.raw_os_error(), Some(libc::EBUSY | libc::ENOTEMPTY)) => {}
        Err(e) => return Err(io_err(dir)(e)),
    }
    let subs = match subdirs(dir) {
        Ok(s) => s,
        Err(CgroupError::Io { source, .. }) if source.kind() == ErrorKind::NotFound => {
            return Ok(())
        }
        Err(e) => return Err(e),
    };
    for sub in subs {
        remove_tree(&sub)?;
    }
    let deadline = Instant::now() + Duration::from_secs(1);
    let mut pause = Duration::from_millis(5);
    loop {
        match std::fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && Instant::now() < deadline => {
                sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(100));
            }
            Err(e) => return Err(io_err(dir)(e)),
        }
    }
}

/// Polls `done` every few milliseconds until it returns true or `timeout` passes.
pub(crate) fn wait_until(
    timeout: Duration,
    mut done: impl FnMut() -> Result<bool, CgroupError>,
) -> Result<bool, CgroupError> {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(1);
    loop {
        if done()? {
            return Ok(true);
        }
        if Instant::now() >= deadline {
            return Ok(false);
        }
        sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_truncates_and_requires_existing_file() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("f"), "100000\n").unwrap();
        write(tmp.path(), "f", "10").unwrap();
        assert_eq!(read(tmp.path(), "f").unwrap(), "10");
        assert!(matches!(
            write(tmp.path(), "missing", "1"),
            Err(CgroupError::Io { .. })
        ));
        assert_eq!(read_opt(tmp.path(), "missing").unwrap(), None);
        assert_eq!(read_u64_opt(tmp.path(), "f").unwrap(), Some(10));
    }

    #[test]
    fn procs_recursive_and_remove_tree() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("cg");
        let created = mkdir_all(&root.join("a/b")).unwrap();
        assert_eq!(
            created,
            vec![root.clone(), root.join("a"), root.join("a/b")]
        );
        std::fs::write(root.join("cgroup.procs"), "3\n1\n").unwrap();
        std::fs::write(root.join("a/cgroup.procs"), "").unwrap();
        std::fs::write(root.join("a/b/cgroup.procs"), "2\n3\n").unwrap();
        assert_eq!(procs_recursive(&root).unwrap(), vec![1, 2, 3]);
        for f in ["cgroup.procs", "a/cgroup.procs", "a/b/cgroup.procs"] {
            std::fs::remove_file(root.join(f)).unwrap();
        }
        remove_tree(&root).unwrap();
        assert!(!root.exists());
        remove_tree(&root).unwrap();
    }
}
