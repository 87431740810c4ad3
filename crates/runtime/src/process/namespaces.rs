//! Namespaces of a container process: which are new, which are joined by path, and the user
//! namespace's id maps and the time namespace's offsets.

use std::collections::HashMap;
use std::fs::File;
use std::os::fd::OwnedFd;
use std::path::PathBuf;

use nix::sched::CloneFlags;
use oci_spec::runtime::{Linux, LinuxIdMapping, LinuxNamespaceType};

use super::ProcessError;

/// The namespaces from a spec, checked in the parent before anything is forked.
#[derive(Debug, Clone)]
pub(crate) struct NamespacePlan {
    /// Namespaces joined by path, in spec order (the user namespace is joined first anyway).
    pub join: Vec<(LinuxNamespaceType, PathBuf)>,
    /// Namespaces created new, as clone flags (without CLONE_NEWUSER).
    pub new: CloneFlags,
    /// A new user namespace is created (its maps are written by the parent).
    pub new_user: bool,
    pub uid_map: String,
    pub gid_map: String,
    /// Contents of /proc/self/timens_offsets when a new time namespace is created.
    pub time_offsets: String,
}

impl NamespacePlan {
    pub(crate) fn from_spec(linux: &Linux) -> Result<Self, ProcessError> {
        let mut plan = NamespacePlan {
            join: Vec::new(),
            new: CloneFlags::empty(),
            new_user: false,
            uid_map: String::new(),
            gid_map: String::new(),
            time_offsets: String::new(),
        };
        let mut seen = Vec::new();
        for ns in linux.namespaces().iter().flatten() {
            let typ = ns.typ();
            if seen.contains(&typ) {
                return Err(ProcessError::Invalid(format!(
                    "namespace {typ} is listed twice"
                )));
            }
            seen.push(typ);
            match ns.path() {
                Some(path) if !path.as_os_str().is_empty() => {
                    if !path.is_absolute() {
                        return Err(ProcessError::Invalid(format!(
                            "namespace {typ} path {} must be absolute",
                            path.display()
                        )));
                    }
                    plan.join.push((typ, path.clone()));
                }
                _ if typ == LinuxNamespaceType::User => plan.new_user = true,
                _ => plan.new |= clone_flag(typ),
            }
        }
        let has = |t| seen.contains(&t);
        if plan.new_user {
            plan.uid_map = id_map(linux.uid_mappings().as_deref(), "uid")?;
            plan.gid_map = id_map(linux.gid_mappings().as_deref(), "gid")?;
        } else if linux.uid_mappings().as_ref().is_some_and(|m| !m.is_empty())
            && !has(LinuxNamespaceType::User)
        {
            return Err(ProcessError::Invalid(
                "uidMappings are set but there is no user namespace".into(),
            ));
        }
        if let Some(offsets) = linux.time_offsets() {
            if !plan
                .new
                .contains(CloneFlags::from_bits_retain(libc::CLONE_NEWTIME))
            {
                if !offsets.is_empty() {
                    return Err(ProcessError::Invalid(
                        "timeOffsets need a new time namespace".into(),
                    ));
                }
            } else {
                plan.time_offsets = time_offsets(offsets)?;
            }
        }
        Ok(plan)
    }

    /// Is a namespace of this type created new or joined (i.e. not the host's)?
    pub(crate) fn isolates(&self, typ: LinuxNamespaceType) -> bool {
        (typ == LinuxNamespaceType::User && self.new_user)
            || (typ != LinuxNamespaceType::User && self.new.contains(clone_flag(typ)))
            || self.join.iter().any(|(t, _)| *t == typ)
    }

    pub(crate) fn creates(&self, typ: LinuxNamespaceType) -> bool {
        match typ {
            LinuxNamespaceType::User => self.new_user,
            t => self.new.contains(clone_flag(t)),
        }
    }
}

pub(crate) fn clone_flag(typ: LinuxNamespaceType) -> CloneFlags {
    CloneFlags::from_bits_retain(typ as libc::c_int)
}

fn id_map(mappings: Option<&[LinuxIdMapping]>, what: &str) -> Result<String, ProcessError> {
    let mappings = mappings.unwrap_or_default();
    if mappings.is_empty() {
        return Err(ProcessError::Invalid(format!(
            "a new user namespace needs {what}Mappings"
        )));
    }
    let mut out = String::new();
    for m in mappings {
        if m.size() == 0 {
            return Err(ProcessError::Invalid(format!("{what} mapping of size 0")));
        }
        out.push_str(&format!(
            "{} {} {}\n",
            m.container_id(),
            m.host_id(),
            m.size()
        ));
    }
    Ok(out)
}

fn time_offsets(
    offsets: &HashMap<String, oci_spec::runtime::LinuxTimeOffset>,
) -> Result<String, ProcessError> {
    let mut out = String::new();
    let mut keys: Vec<_> = offsets.keys().collect();
    keys.sort();
    for clock in keys {
        if clock != "monotonic" && clock != "boottime" {
            return Err(ProcessError::Invalid(format!(
                "unknown clock {clock:?} in timeOffsets (monotonic or boottime)"
            )));
        }
        let o = &offsets[clock];
        out.push_str(&format!(
            "{clock} {} {}\n",
            o.secs().unwrap_or(0),
            o.nanosecs().unwrap_or(0)
        ));
    }
    Ok(out)
}

/// Opens every namespace to join before joining any (joining the mount namespace changes how
/// paths resolve).
pub(crate) fn open_joins(
    join: &[(LinuxNamespaceType, PathBuf)],
) -> Result<Vec<(LinuxNamespaceType, OwnedFd)>, ProcessError> {
    let mut fds = Vec::with_capacity(join.len());
    for (typ, path) in join {
        let f = File::open(path).map_err(|e| ProcessError::Io {
            context: format!("opening {typ} namespace {}", path.display()),
            source: e,
        })?;
        fds.push((*typ, OwnedFd::from(f)));
    }
    // The user namespace first (it grants the rights to join the others), mount last.
    fds.sort_by_key(|(t, _)| match t {
        LinuxNamespaceType::User => 0,
        LinuxNamespaceType::Mount => 2,
        _ => 1,
    });
    Ok(fds)
}

/// Joins the opened namespaces. Joining a namespace the process is already in is skipped.
pub(crate) fn join(fds: &[(LinuxNamespaceType, OwnedFd)]) -> Result<(), ProcessError> {
    for (typ, fd) in fds {
        if *typ == LinuxNamespaceType::User && same_ns(fd, "user") {
            continue;
        }
        nix::sched::setns(fd, clone_flag(*typ))
            .map_err(|e| ProcessError::sys(format!("joining {typ} namespace"), e))?;
    }
    Ok(())
}

fn same_ns(fd: &OwnedFd, name: &str) -> bool {
    let ours = std::fs::metadata(format!("/proc/self/ns/{name}"));
    let theirs = nix::sys::stat::fstat(fd);
    match (ours, theirs) {
        (Ok(a), Ok(b)) => {
            use std::os::unix::fs::MetadataExt;
            a.ino() == b.st_ino && a.dev() == b.st_dev
        }
        _ => false,
    }
}

/// The namespaces of a running process, to join for an exec (user first, mount last), skipping
/// those the caller already shares.
pub(crate) fn of_process(pid: i32) -> Result<Vec<(LinuxNamespaceType, OwnedFd)>, ProcessError> {
    const ORDER: [(&str, LinuxNamespaceType); 8] = [
        ("user", LinuxNamespaceType::User),
        ("ipc", LinuxNamespaceType::Ipc),
        ("uts", LinuxNamespaceType::Uts),
        ("net", LinuxNamespaceType::Network),
        ("pid", LinuxNamespaceType::Pid),
        ("cgroup", LinuxNamespaceType::Cgroup),
        ("time", LinuxNamespaceType::Time),
        ("mnt", LinuxNamespaceType::Mount),
    ];
    let mut fds = Vec::new();
    for (name, typ) in ORDER {
        let path = format!("/proc/{pid}/ns/{name}");
        let f = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                return Err(ProcessError::Io {
                    context: format!("opening {path}"),
                    source: e,
                })
            }
        };
        let fd = OwnedFd::from(f);
        if same_ns(&fd, name) {
            continue;
        }
        fds.push((typ, fd));
    }
    Ok(fds)
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::{LinuxBuilder, LinuxIdMappingBuilder, LinuxNamespaceBuilder};

    fn ns(typ: LinuxNamespaceType, path: Option<&str>) -> oci_spec::runtime::LinuxNamespace {
        let b = LinuxNamespaceBuilder::default().typ(typ);
        match path {
            Some(p) => b.path(p).build().unwrap(),
            None => b.build().unwrap(),
        }
    }

    #[test]
    fn plan_splits_new_and_joined_and_formats_maps() {
        let map = LinuxIdMappingBuilder::default()
            .container_id(0u32)
            .host_id(100000u32)
            .size(65536u32)
            .build()
            .unwrap();
        let linux = LinuxBuilder::default()
            .namespaces(vec![
                ns(LinuxNamespaceType::User, None),
                ns(LinuxNamespaceType::Pid, None),
                ns(LinuxNamespaceType::Network, Some("/var/run/netns/x")),
            ])
            .uid_mappings(vec![map])
            .gid_mappings(vec![map])
            .build()
            .unwrap();
        let plan = NamespacePlan::from_spec(&linux).unwrap();
        assert!(plan.new_user);
        assert_eq!(plan.new, CloneFlags::CLONE_NEWPID);
        assert_eq!(plan.join.len(), 1);
        assert_eq!(plan.uid_map, "0 100000 65536\n");
        assert!(plan.isolates(LinuxNamespaceType::Network));
        assert!(!plan.isolates(LinuxNamespaceType::Mount));
    }

    #[test]
    fn user_namespace_without_maps_and_duplicates_are_refused() {
        let linux = LinuxBuilder::default()
            .namespaces(vec![ns(LinuxNamespaceType::User, None)])
            .build()
            .unwrap();
        assert!(NamespacePlan::from_spec(&linux).is_err());
        let linux = LinuxBuilder::default()
            .namespaces(vec![
                ns(LinuxNamespaceType::Pid, None),
                ns(LinuxNamespaceType::Pid, None),
            ])
            .build()
            .unwrap();
        assert!(NamespacePlan::from_spec(&linux).is_err());
    }
}
