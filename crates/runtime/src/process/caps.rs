//! Capabilities: the bounding set, the effective/permitted/inheritable sets and the ambient set.
//!
//! Both entry points run in a forked child between fork and exec: they only iterate the spec's
//! sets (no allocation) and make raw `prctl`/`capset` calls.

use nix::errno::Errno;
use oci_spec::runtime::{Capabilities, Capability, LinuxCapabilities};

use super::ProcessError;

/// `_LINUX_CAPABILITY_VERSION_3`: two 32-bit words per set.
const CAPABILITY_VERSION_3: u32 = 0x2008_0522;

#[repr(C)]
struct CapUserHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapUserData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// Parses a capability name as written in specs and on command lines ("CAP_SYS_ADMIN", also
/// "sys_admin"). Unknown names are an error naming them.
#[cfg(test)]
pub(crate) fn parse_name(name: &str) -> Result<Capability, ProcessError> {
    serde_json::from_value(serde_json::Value::String(name.to_owned()))
        .map_err(|_| ProcessError::Invalid(format!("unknown capability {name:?}")))
}

/// Drops every capability not in the spec's bounding set. Runs while still privileged
/// (needs CAP_SETPCAP). Capabilities above the kernel's last one are ignored.
pub(crate) fn drop_bounding(caps: &LinuxCapabilities) -> Result<(), ProcessError> {
    let keep = mask(caps.bounding().as_ref());
    for cap in 0..64u32 {
        if keep & (1u64 << cap) != 0 {
            continue;
        }
        // SAFETY: PR_CAPBSET_DROP takes a capability number and touches no memory.
        let rc = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) };
        if rc < 0 {
            match Errno::last() {
                // The kernel does not know this capability (nor any higher one).
                Errno::EINVAL => break,
                errno => return Err(ProcessError::sys("dropping a bounding capability", errno)),
            }
        }
    }
    Ok(())
}

/// Sets the inheritable, permitted and effective sets (one `capset`), then the ambient set:
/// cleared first, then raised for each ambient capability that is both permitted and
/// inheritable (the kernel refuses the others). Missing sets are empty. Runs after the user
/// switch (which keeps the permitted set, see `user::switch`).
pub(crate) fn apply_sets(caps: &LinuxCapabilities) -> Result<(), ProcessError> {
    let valid = valid_mask();
    let inheritable = mask(caps.inheritable().as_ref()) & valid;
    let permitted = mask(caps.permitted().as_ref()) & valid;
    let effective = mask(caps.effective().as_ref()) & valid;
    let ambient = mask(caps.ambient().as_ref()) & valid & permitted & inheritable;

    let mut header = CapUserHeader {
        version: CAPABILITY_VERSION_3,
        pid: 0,
    };
    let data = [
        CapUserData {
            effective: effective as u32,
            permitted: permitted as u32,
            inheritable: inheritable as u32,
        },
        CapUserData {
            effective: (effective >> 32) as u32,
            permitted: (permitted >> 32) as u32,
            inheritable: (inheritable >> 32) as u32,
        },
    ];
    // SAFETY: capset reads one header and two data words (version 3), both live on our stack
    // for the duration of the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_capset,
            &mut header as *mut CapUserHeader,
            data.as_ptr(),
        )
    };
    if rc < 0 {
        return Err(ProcessError::sys("setting capabilities", Errno::last()));
    }

    set_ambient(
        ambient,
        caps.ambient().as_ref().is_some_and(|a| !a.is_empty()),
    )
}

/// Clears the ambient set and raises `ambient`. `requested` tells whether the spec asked for
/// any ambient capability: only then is a kernel without ambient support an error.
fn set_ambient(ambient: u64, requested: bool) -> Result<(), ProcessError> {
    // SAFETY: PR_CAP_AMBIENT_CLEAR_ALL takes no pointers.
    let rc = unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
            0,
            0,
            0,
        )
    };
    if rc < 0 {
        let errno = Errno::last();
        if errno == Errno::EINVAL && !requested {
            return Ok(());
        }
        return Err(ProcessError::sys("clearing ambient capabilities", errno));
    }
    for cap in 0..64u32 {
        if ambient & (1u64 << cap) == 0 {
            continue;
        }
        // SAFETY: PR_CAP_AMBIENT_RAISE takes a capability number and touches no memory.
        let rc = unsafe {
            libc::prctl(
                libc::PR_CAP_AMBIENT,
                libc::PR_CAP_AMBIENT_RAISE as libc::c_ulong,
                cap as libc::c_ulong,
                0,
                0,
            )
        };
        if rc < 0 {
            return Err(ProcessError::sys(
                "raising an ambient capability",
                Errno::last(),
            ));
        }
    }
    Ok(())
}

/// The capabilities of `set` as a bit mask (bit n = capability number n).
fn mask(set: Option<&Capabilities>) -> u64 {
    set.map_or(0, |set| {
        set.iter()
            .fold(0, |mask, cap| mask | kernel_cap(*cap).bitmask())
    })
}

/// Bits of all capabilities the running kernel knows (what /proc/sys/kernel/cap_last_cap
/// says, probed with PR_CAPBSET_READ so that it works without /proc).
fn valid_mask() -> u64 {
    let mut mask = 0u64;
    for cap in 0..64u32 {
        // SAFETY: PR_CAPBSET_READ takes a capability number and touches no memory.
        let rc = unsafe { libc::prctl(libc::PR_CAPBSET_READ, cap as libc::c_ulong, 0, 0, 0) };
        if rc < 0 {
            break;
        }
        mask |= 1u64 << cap;
    }
    mask
}

/// The kernel's number for a spec capability.
fn kernel_cap(cap: Capability) -> caps::Capability {
    use caps::Capability as K;
    match cap {
        Capability::AuditControl => K::CAP_AUDIT_CONTROL,
        Capability::AuditRead => K::CAP_AUDIT_READ,
        Capability::AuditWrite => K::CAP_AUDIT_WRITE,
        Capability::BlockSuspend => K::CAP_BLOCK_SUSPEND,
        Capability::Bpf => K::CAP_BPF,
        Capability::CheckpointRestore => K::CAP_CHECKPOINT_RESTORE,
        Capability::Chown => K::CAP_CHOWN,
        Capability::DacOverride => K::CAP_DAC_OVERRIDE,
        Capability::DacReadSearch => K::CAP_DAC_READ_SEARCH,
        Capability::Fowner => K::CAP_FOWNER,
        Capability::Fsetid => K::CAP_FSETID,
        Capability::IpcLock => K::CAP_IPC_LOCK,
        Capability::IpcOwner => K::CAP_IPC_OWNER,
        Capability::Kill => K::CAP_KILL,
        Capability::Lease => K::CAP_LEASE,
        Capability::LinuxImmutable => K::CAP_LINUX_IMMUTABLE,
        Capability::MacAdmin => K::CAP_MAC_ADMIN,
        Capability::MacOverride => K::CAP_MAC_OVERRIDE,
        Capability::Mknod => K::CAP_MKNOD,
        Capability::NetAdmin => K::CAP_NET_ADMIN,
        Capability::NetBindService => K::CAP_NET_BIND_SERVICE,
        Capability::NetBroadcast => K::CAP_NET_BROADCAST,
        Capability::NetRaw => K::CAP_NET_RAW,
        Capability::Perfmon => K::CAP_PERFMON,
        Capability::Setgid => K::CAP_SETGID,
        Capability::Setfcap => K::CAP_SETFCAP,
        Capability::Setpcap => K::CAP_SETPCAP,
        Capability::Setuid => K::CAP_SETUID,
        Capability::SysAdmin => K::CAP_SYS_ADMIN,
        Capability::SysBoot => K::CAP_SYS_BOOT,
        Capability::SysChroot => K::CAP_SYS_CHROOT,
        Capability::SysModule => K::CAP_SYS_MODULE,
        Capability::SysNice => K::CAP_SYS_NICE,
        Capability::SysPacct => K::CAP_SYS_PACCT,
        Capability::SysPtrace => K::CAP_SYS_PTRACE,
        Capability::SysRawio => K::CAP_SYS_RAWIO,
        Capability::SysResource => K::CAP_SYS_RESOURCE,
        Capability::SysTime => K::CAP_SYS_TIME,
        Capability::SysTtyConfig => K::CAP_SYS_TTY_CONFIG,
        Capability::Syslog => K::CAP_SYSLOG,
        Capability::WakeAlarm => K::CAP_WAKE_ALARM,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::process::seccomp::test_fork::run_in_child;
    use caps::CapSet;

    fn set(names: &[&str]) -> Capabilities {
        names.iter().map(|n| parse_name(n).unwrap()).collect()
    }

    /// Reads one `Cap*:` line of /proc/self/status as a mask.
    pub(crate) fn status_mask(field: &str) -> u64 {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let line = status
            .lines()
            .find(|l| l.starts_with(&format!("{field}:")))
            .unwrap();
        u64::from_str_radix(line.split_whitespace().nth(1).unwrap(), 16).unwrap()
    }

    fn bits(caps: &[caps::Capability]) -> u64 {
        caps.iter().fold(0, |m, c| m | c.bitmask())
    }

    #[test]
    fn parses_spec_names_and_rejects_unknown_ones() {
        assert_eq!(parse_name("CAP_SYS_ADMIN").unwrap(), Capability::SysAdmin);
        assert_eq!(parse_name("net_raw").unwrap(), Capability::NetRaw);
        let err = parse_name("CAP_MAKE_COFFEE").unwrap_err();
        assert!(matches!(&err, ProcessError::Invalid(m) if m.contains("CAP_MAKE_COFFEE")));
    }

    #[test]
    fn every_spec_capability_maps_to_its_kernel_number() {
        // Spot checks against the kernel's numbering (include/uapi/linux/capability.h).
        assert_eq!(kernel_cap(Capability::Chown).index(), 0);
        assert_eq!(kernel_cap(Capability::SysAdmin).index(), 21);
        assert_eq!(kernel_cap(Capability::CheckpointRestore).index(), 40);
    }

    #[test]
    fn drops_bounding_set_and_applies_sets_with_ambient_filter() {
        run_in_child(|| {
            let mut spec = LinuxCapabilities::default();
            spec.set_bounding(Some(set(&[
                "CAP_CHOWN",
                "CAP_KILL",
                "CAP_SETPCAP",
                "CAP_NET_RAW",
            ])));
            spec.set_permitted(Some(set(&["CAP_CHOWN", "CAP_KILL", "CAP_NET_RAW"])));
            spec.set_effective(Some(set(&["CAP_CHOWN"])));
            spec.set_inheritable(Some(set(&["CAP_KILL", "CAP_NET_RAW"])));
            // CHOWN is not inheritable, SYS_ADMIN not permitted: only KILL becomes ambient.
            spec.set_ambient(Some(set(&["CAP_KILL", "CAP_CHOWN", "CAP_SYS_ADMIN"])));
            drop_bounding(&spec).map_err(|e| e.to_string())?;
            use caps::Capability as K;
            let want_bnd = bits(&[K::CAP_CHOWN, K::CAP_KILL, K::CAP_SETPCAP, K::CAP_NET_RAW]);
            check("CapBnd", want_bnd)?;
            apply_sets(&spec).map_err(|e| e.to_string())?;
            check("CapPrm", bits(&[K::CAP_CHOWN, K::CAP_KILL, K::CAP_NET_RAW]))?;
            check("CapEff", bits(&[K::CAP_CHOWN]))?;
            check("CapInh", bits(&[K::CAP_KILL, K::CAP_NET_RAW]))?;
            check("CapAmb", bits(&[K::CAP_KILL]))?;
            // Dropped capabilities are really gone: raising SYS_ADMIN must fail.
            if caps::raise(None, CapSet::Effective, K::CAP_SYS_ADMIN).is_ok() {
                return Err("raised CAP_SYS_ADMIN after dropping it".into());
            }
            Ok(())
        });
    }

    #[test]
    fn missing_sets_mean_empty() {
        run_in_child(|| {
            let mut spec = LinuxCapabilities::default();
            spec.set_bounding(None);
            spec.set_permitted(None);
            spec.set_effective(None);
            spec.set_inheritable(None);
            spec.set_ambient(None);
            drop_bounding(&spec).map_err(|e| e.to_string())?;
            apply_sets(&spec).map_err(|e| e.to_string())?;
            for field in ["CapBnd", "CapPrm", "CapEff", "CapInh", "CapAmb"] {
                check(field, 0)?;
            }
            Ok(())
        });
    }

    #[test]
    fn non_root_user_keeps_the_spec_capabilities_in_runtime_order() {
        run_in_child(|| {
            let mut spec = LinuxCapabilities::default();
            let names = ["CAP_CHOWN", "CAP_NET_BIND_SERVICE"];
            for setter in [
                LinuxCapabilities::set_bounding,
                LinuxCapabilities::set_permitted,
                LinuxCapabilities::set_effective,
                LinuxCapabilities::set_inheritable,
                LinuxCapabilities::set_ambient,
            ] {
                setter(&mut spec, Some(set(&names)));
            }
            let mut user = oci_spec::runtime::User::default();
            user.set_uid(4321);
            user.set_gid(4321);
            drop_bounding(&spec).map_err(|e| e.to_string())?;
            crate::process::user::switch(&user).map_err(|e| e.to_string())?;
            apply_sets(&spec).map_err(|e| e.to_string())?;
            use caps::Capability as K;
            let want = bits(&[K::CAP_CHOWN, K::CAP_NET_BIND_SERVICE]);
            for field in ["CapBnd", "CapPrm", "CapEff", "CapInh", "CapAmb"] {
                check(field, want)?;
            }
            Ok(())
        });
    }

    fn check(field: &str, want: u64) -> Result<(), String> {
        let got = status_mask(field);
        if got == want {
            Ok(())
        } else {
            Err(format!("{field}: got {got:#x}, want {want:#x}"))
        }
    }
}
