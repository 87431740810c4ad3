//! Finding the v1 controller hierarchies: from `/proc/self/mountinfo` on the host, or from a
//! directory of per-hierarchy directories (fixtures, or a root given by the caller).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::cgroups::fs::io_err;
use crate::cgroups::CgroupError;

/// The controllers Berth knows; named hierarchies (`name=systemd`) and unknown options are
/// ignored.
const KNOWN: &[&str] = &[
    "blkio",
    "cpu",
    "cpuacct",
    "cpuset",
    "devices",
    "freezer",
    "hugetlb",
    "memory",
    "misc",
    "net_cls",
    "net_prio",
    "perf_event",
    "pids",
    "rdma",
];

/// One mounted v1 hierarchy: the controllers bound to it and where it is mounted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Mount {
    pub(super) controllers: Vec<String>,
    pub(super) mount_point: PathBuf,
}

fn known(names: impl Iterator<Item = impl AsRef<str>>) -> Vec<String> {
    names
        .filter(|n| KNOWN.contains(&n.as_ref()))
        .map(|n| n.as_ref().to_string())
        .collect()
}

/// The cgroup v1 mounts listed in a mountinfo file; the first mount of each hierarchy wins.
pub(super) fn parse_mountinfo(content: &str) -> Vec<Mount> {
    let mut out: Vec<Mount> = Vec::new();
    for line in content.lines() {
        // id parent maj:min root mount_point options [optional...] - fstype source super_opts
        let Some((pre, post)) = line.split_once(" - ") else {
            continue;
        };
        let mut post = post.split_whitespace();
        if post.next() != Some("cgroup") {
            continue;
        }
        let super_opts = post.nth(1).unwrap_or("");
        let Some(mount_point) = pre.split_whitespace().nth(4) else {
            continue;
        };
        let controllers = known(super_opts.split(','));
        if controllers.is_empty() || out.iter().any(|m| m.controllers == controllers) {
            continue;
        }
        out.push(Mount {
            controllers,
            mount_point: PathBuf::from(unescape(mount_point)),
        });
    }
    out
}

/// Undoes the octal escapes (`\040` for a space) of mountinfo paths.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The hierarchies below `root`: every directory whose name lists controllers
/// (`cpu,cpuacct`); symlinks to an already seen directory are skipped.
pub(super) fn scan_root_dir(root: &Path) -> Result<Vec<Mount>, CgroupError> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(root).map_err(io_err(root))? {
        let entry = entry.map_err(io_err(root))?;
        names.push(entry.file_name().to_string_lossy().into_owned());
    }
    names.sort();
    let mut seen: HashMap<PathBuf, usize> = HashMap::new();
    let mut out: Vec<Mount> = Vec::new();
    for name in names {
        let path = root.join(&name);
        if !path.is_dir() {
            continue;
        }
        let controllers = known(name.split(','));
        if controllers.is_empty() {
            continue;
        }
        let real = std::fs::canonicalize(&path).map_err(io_err(&path))?;
        if let Some(&i) = seen.get(&real) {
            let m = &mut out[i];
            m.controllers.extend(controllers);
            m.controllers.sort();
            m.controllers.dedup();
            continue;
        }
        seen.insert(real, out.len());
        out.push(Mount {
            controllers,
            mount_point: path,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_with_combined_and_named_hierarchies() {
        let info = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime shared:9 - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
50 31 0:32 / /mnt/my\\040mem rw,relatime - cgroup cgroup rw,memory
";
        let m = parse_mountinfo(info);
        assert_eq!(
            m,
            vec![
                Mount {
                    controllers: vec!["cpu".into(), "cpuacct".into()],
                    mount_point: "/sys/fs/cgroup/cpu,cpuacct".into()
                },
                Mount {
                    controllers: vec!["memory".into()],
                    mount_point: "/sys/fs/cgroup/memory".into()
                },
            ]
        );
        assert_eq!(unescape("/mnt/my\\040mem"), "/mnt/my mem");
    }

    #[test]
    fn root_dir_merges_symlinks() {
        let tmp = tempfile::tempdir().unwrap();
        let r = tmp.path();
        std::fs::create_dir(r.join("cpu,cpuacct")).unwrap();
        std::os::unix::fs::symlink("cpu,cpuacct", r.join("cpu")).unwrap();
        std::os::unix::fs::symlink("cpu,cpuacct", r.join("cpuacct")).unwrap();
        std::fs::create_dir(r.join("memory")).unwrap();
        std::fs::create_dir(r.join("systemd")).unwrap();
        std::fs::write(r.join("pids"), "").unwrap();
        let m = scan_root_dir(r).unwrap();
        assert_eq!(m.len(), 2, "{m:?}");
        assert_eq!(
            m[0].controllers,
            vec!["cpu".to_string(), "cpuacct".to_string()]
        );
        assert_eq!(m[1].controllers, vec!["memory".to_string()]);
    }
}
