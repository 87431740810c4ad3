//! Resource limits (`process.rlimits`). `apply` runs in a forked child: one setrlimit per entry.

use nix::errno::Errno;
use oci_spec::runtime::{PosixRlimit, PosixRlimitType};

use super::ProcessError;

/// Parses a limit name as written in specs ("RLIMIT_NOFILE"); unknown names are an error
/// naming them.
#[cfg(test)]
pub(crate) fn parse_name(name: &str) -> Result<PosixRlimitType, ProcessError> {
    serde_json::from_value(serde_json::Value::String(name.to_owned()))
        .map_err(|_| ProcessError::Invalid(format!("unknown rlimit {name:?}")))
}

/// Sets every limit of the spec on the calling process (soft and hard).
pub(crate) fn apply(rlimits: &[PosixRlimit]) -> Result<(), ProcessError> {
    for rlimit in rlimits {
        let limit = libc::rlimit {
            rlim_cur: rlimit.soft(),
            rlim_max: rlimit.hard(),
        };
        // SAFETY: setrlimit reads one live rlimit struct.
        let rc = unsafe { libc::setrlimit(resource(rlimit.typ()) as _, &limit) };
        if rc < 0 {
            return Err(ProcessError::sys("setrlimit", Errno::last()));
        }
    }
    Ok(())
}

/// The kernel's resource number for a spec limit.
fn resource(typ: PosixRlimitType) -> libc::c_int {
    (match typ {
        PosixRlimitType::RlimitCpu => libc::RLIMIT_CPU,
        PosixRlimitType::RlimitFsize => libc::RLIMIT_FSIZE,
        PosixRlimitType::RlimitData => libc::RLIMIT_DATA,
        PosixRlimitType::RlimitStack => libc::RLIMIT_STACK,
        PosixRlimitType::RlimitCore => libc::RLIMIT_CORE,
        PosixRlimitType::RlimitRss => libc::RLIMIT_RSS,
        PosixRlimitType::RlimitNproc => libc::RLIMIT_NPROC,
        PosixRlimitType::RlimitNofile => libc::RLIMIT_NOFILE,
        PosixRlimitType::RlimitMemlock => libc::RLIMIT_MEMLOCK,
        PosixRlimitType::RlimitAs => libc::RLIMIT_AS,
        PosixRlimitType::RlimitLocks => libc::RLIMIT_LOCKS,
        PosixRlimitType::RlimitSigpending => libc::RLIMIT_SIGPENDING,
        PosixRlimitType::RlimitMsgqueue => libc::RLIMIT_MSGQUEUE,
        PosixRlimitType::RlimitNice => libc::RLIMIT_NICE,
        PosixRlimitType::RlimitRtprio => libc::RLIMIT_RTPRIO,
        PosixRlimitType::RlimitRttime => libc::RLIMIT_RTTIME,
    }) as libc::c_int
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::process::seccomp::test_fork::run_in_child;

    fn limit(name: &str, soft: u64, hard: u64) -> PosixRlimit {
        oci_spec::runtime::PosixRlimitBuilder::default()
            .typ(parse_name(name).unwrap())
            .soft(soft)
            .hard(hard)
            .build()
            .unwrap()
    }

    #[test]
    fn parses_all_sixteen_names_and_rejects_unknown_ones() {
        let names = [
            "CPU",
            "FSIZE",
            "DATA",
            "STACK",
            "CORE",
            "RSS",
            "NPROC",
            "NOFILE",
            "MEMLOCK",
            "AS",
            "LOCKS",
            "SIGPENDING",
            "MSGQUEUE",
            "NICE",
            "RTPRIO",
            "RTTIME",
        ];
        let mut numbers: Vec<_> = names
            .iter()
            .map(|n| resource(parse_name(&format!("RLIMIT_{n}")).unwrap()))
            .collect();
        numbers.sort();
        assert_eq!(numbers, (0..16).collect::<Vec<_>>());
        let err = parse_name("RLIMIT_COFFEE").unwrap_err();
        assert!(matches!(&err, ProcessError::Invalid(m) if m.contains("RLIMIT_COFFEE")));
    }

    #[test]
    fn applies_soft_and_hard_limits() {
        run_in_child(|| {
            apply(&[limit("RLIMIT_NOFILE", 100, 200), limit("RLIMIT_CORE", 0, 0)])
                .map_err(|e| e.to_string())?;
            let mut got = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            // SAFETY: getrlimit writes one live rlimit struct.
            unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut got) };
            if (got.rlim_cur, got.rlim_max) != (100, 200) {
                return Err(format!("NOFILE is {}/{}", got.rlim_cur, got.rlim_max));
            }
            // Raising the hard limit above 200 now needs CAP_SYS_RESOURCE: drop it and fail.
            caps::drop(
                None,
                caps::CapSet::Effective,
                caps::Capability::CAP_SYS_RESOURCE,
            )
            .map_err(|e| e.to_string())?;
            match apply(&[limit("RLIMIT_NOFILE", 100, 300)]) {
                Err(ProcessError::Sys { .. }) => Ok(()),
                other => Err(format!("raising the hard limit: {other:?}")),
            }
        });
    }
}
