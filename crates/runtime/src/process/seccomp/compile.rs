//! From an OCI `LinuxSeccomp` to classic BPF, with libseccomp. Runs in the parent.

use std::collections::HashSet;
use std::io::{Read, Seek, SeekFrom};

use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall,
};
use nix::sys::memfd::{memfd_create, MFdFlags};
use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompFilterFlag,
    LinuxSeccompOperator, LinuxSyscall,
};

use super::SeccompError;

/// The errno returned by SCMP_ACT_ERRNO / SCMP_ACT_TRACE when the spec gives none.
const DEFAULT_ERRNO: u32 = libc::EPERM as u32;

const SECCOMP_FILTER_FLAG_TSYNC: libc::c_ulong = 1 << 0;
const SECCOMP_FILTER_FLAG_LOG: libc::c_ulong = 1 << 1;
const SECCOMP_FILTER_FLAG_SPEC_ALLOW: libc::c_ulong = 1 << 2;

/// Compiles `spec` and returns the exported BPF bytes and the seccomp(2) flags.
pub(super) fn compile(spec: &LinuxSeccomp) -> Result<(Vec<u8>, libc::c_ulong), SeccompError> {
    if spec.listener_path().is_some() {
        return Err(SeccompError::Unsupported(
            "a seccomp listener (listenerPath)".into(),
        ));
    }
    let default_action = action(spec.default_action(), spec.default_errno_ret())?;
    let mut ctx = ScmpFilterContext::new(default_action).map_err(lib("creating the filter"))?;

    for arch in spec.architectures().iter().flatten() {
        // An architecture this libseccomp does not know cannot be filtered for; leaving it
        // out is safe: syscalls from architectures not in the filter are killed.
        let _ = ctx.add_arch(scmp_arch(*arch));
    }

    for syscall in spec.syscalls().iter().flatten() {
        add_rules(&mut ctx, syscall, default_action)?;
    }

    let flags = spec
        .flags()
        .iter()
        .flatten()
        .fold(0, |flags, flag| flags | filter_flag(*flag));
    Ok((export(&ctx)?, flags))
}

/// Adds the rules of one spec entry (one rule per syscall name, or several when the same
/// argument is compared more than once: libseccomp cannot AND two comparisons of one argument,
/// so like runc they become alternatives).
fn add_rules(
    ctx: &mut ScmpFilterContext,
    syscall: &LinuxSyscall,
    default_action: ScmpAction,
) -> Result<(), SeccompError> {
    let action = action(syscall.action(), syscall.errno_ret())?;
    // libseccomp refuses rules that repeat the default action; they would change nothing.
    if action == default_action {
        return Ok(());
    }
    let args = syscall.args().as_deref().unwrap_or(&[]);
    let conditions = args.iter().map(condition).collect::<Result<Vec<_>, _>>()?;
    let mut indices = HashSet::new();
    let repeated = !args.iter().all(|arg| indices.insert(arg.index()));

    for name in syscall.names() {
        // Unknown to libseccomp (too new, or a typo): skipped like runc does.
        let Ok(number) = ScmpSyscall::from_name(name) else {
            continue;
        };
        let context = || format!("adding a rule for {name}");
        if conditions.is_empty() {
            ctx.add_rule(action, number)
                .map_err(|source| SeccompError::Library {
                    context: context(),
                    source,
                })?;
        } else if !repeated {
            ctx.add_rule_conditional(action, number, &conditions)
                .map_err(|source| SeccompError::Library {
                    context: context(),
                    source,
                })?;
        } else {
            for condition in &conditions {
                ctx.add_rule_conditional(action, number, std::slice::from_ref(condition))
                    .map_err(|source| SeccompError::Library {
                        context: context(),
                        source,
                    })?;
            }
        }
    }
    Ok(())
}

/// One argument comparison. For SCMP_CMP_MASKED_EQ, `value` is the mask and `valueTwo` the
/// expected masked value.
fn condition(arg: &LinuxSeccompArg) -> Result<ScmpArgCompare, SeccompError> {
    let index = u32::try_from(arg.index())
        .ok()
        .filter(|index| *index < 6)
        .ok_or_else(|| {
            SeccompError::Invalid(format!("syscall argument index {} (max 5)", arg.index()))
        })?;
    let (op, datum) = match arg.op() {
        LinuxSeccompOperator::ScmpCmpNe => (ScmpCompareOp::NotEqual, arg.value()),
        LinuxSeccompOperator::ScmpCmpLt => (ScmpCompareOp::Less, arg.value()),
        LinuxSeccompOperator::ScmpCmpLe => (ScmpCompareOp::LessOrEqual, arg.value()),
        LinuxSeccompOperator::ScmpCmpEq => (ScmpCompareOp::Equal, arg.value()),
        LinuxSeccompOperator::ScmpCmpGe => (ScmpCompareOp::GreaterEqual, arg.value()),
        LinuxSeccompOperator::ScmpCmpGt => (ScmpCompareOp::Greater, arg.value()),
        LinuxSeccompOperator::ScmpCmpMaskedEq => (
            ScmpCompareOp::MaskedEqual(arg.value()),
            arg.value_two().unwrap_or(0),
        ),
    };
    Ok(ScmpArgCompare::new(index, op, datum))
}

/// The libseccomp action for a spec action and its optional errno.
fn action(action: LinuxSeccompAction, errno: Option<u32>) -> Result<ScmpAction, SeccompError> {
    let ret = || {
        let errno = errno.unwrap_or(DEFAULT_ERRNO);
        u16::try_from(errno)
            .map_err(|_| SeccompError::Invalid(format!("errnoRet {errno} does not fit 16 bits")))
    };
    Ok(match action {
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => {
            ScmpAction::KillThread
        }
        LinuxSeccompAction::ScmpActKillProcess => ScmpAction::KillProcess,
        LinuxSeccompAction::ScmpActTrap => ScmpAction::Trap,
        LinuxSeccompAction::ScmpActErrno => ScmpAction::Errno(i32::from(ret()?)),
        LinuxSeccompAction::ScmpActTrace => ScmpAction::Trace(ret()?),
        LinuxSeccompAction::ScmpActLog => ScmpAction::Log,
        LinuxSeccompAction::ScmpActAllow => ScmpAction::Allow,
        LinuxSeccompAction::ScmpActNotify => {
            return Err(SeccompError::Unsupported(
                "SCMP_ACT_NOTIFY (seccomp user notification)".into(),
            ))
        }
    })
}

fn filter_flag(flag: LinuxSeccompFilterFlag) -> libc::c_ulong {
    match flag {
        LinuxSeccompFilterFlag::SeccompFilterFlagTsync => SECCOMP_FILTER_FLAG_TSYNC,
        LinuxSeccompFilterFlag::SeccompFilterFlagLog => SECCOMP_FILTER_FLAG_LOG,
        LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => SECCOMP_FILTER_FLAG_SPEC_ALLOW,
        // Only meaningful together with a notification listener, which is unsupported.
        LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv => 0,
    }
}

fn scmp_arch(arch: Arch) -> ScmpArch {
    match arch {
        Arch::ScmpArchNative => ScmpArch::Native,
        Arch::ScmpArchX86 => ScmpArch::X86,
        Arch::ScmpArchX86_64 => ScmpArch::X8664,
        Arch::ScmpArchX32 => ScmpArch::X32,
        Arch::ScmpArchArm => ScmpArch::Arm,
        Arch::ScmpArchAarch64 => ScmpArch::Aarch64,
        Arch::ScmpArchMips => ScmpArch::Mips,
        Arch::ScmpArchMips64 => ScmpArch::Mips64,
        Arch::ScmpArchMips64n32 => ScmpArch::Mips64N32,
        Arch::ScmpArchMipsel => ScmpArch::Mipsel,
        Arch::ScmpArchMipsel64 => ScmpArch::Mipsel64,
        Arch::ScmpArchMipsel64n32 => ScmpArch::Mipsel64N32,
        Arch::ScmpArchPpc => ScmpArch::Ppc,
        Arch::ScmpArchPpc64 => ScmpArch::Ppc64,
        Arch::ScmpArchPpc64le => ScmpArch::Ppc64Le,
        Arch::ScmpArchS390 => ScmpArch::S390,
        Arch::ScmpArchS390x => ScmpArch::S390X,
        Arch::ScmpArchParisc => ScmpArch::Parisc,
        Arch::ScmpArchParisc64 => ScmpArch::Parisc64,
        Arch::ScmpArchRiscv64 => ScmpArch::Riscv64,
        Arch::ScmpArchLoongarch64 => ScmpArch::Loongarch64,
        Arch::ScmpArchM68k => ScmpArch::M68k,
        Arch::ScmpArchSh => ScmpArch::Sh,
        Arch::ScmpArchSheb => ScmpArch::Sheb,
    }
}

/// Exports the filter's BPF through a memfd (libseccomp 2.5 can only write to an fd).
fn export(ctx: &ScmpFilterContext) -> Result<Vec<u8>, SeccompError> {
    let memfd = memfd_create(c"berth-seccomp", MFdFlags::MFD_CLOEXEC)
        .map_err(|errno| SeccompError::Export(errno.into()))?;
    ctx.export_bpf(&memfd).map_err(lib("exporting BPF"))?;
    let mut file = std::fs::File::from(memfd);
    file.seek(SeekFrom::Start(0))
        .map_err(SeccompError::Export)?;
    let mut bpf = Vec::new();
    file.read_to_end(&mut bpf).map_err(SeccompError::Export)?;
    Ok(bpf)
}

fn lib(context: &'static str) -> impl Fn(libseccomp::error::SeccompError) -> SeccompError {
    move |source| SeccompError::Library {
        context: context.into(),
        source,
    }
}
