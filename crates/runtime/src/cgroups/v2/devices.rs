//! v2 device access control: an eBPF `BPF_PROG_TYPE_CGROUP_DEVICE` program built from the
//! spec's device rules.
//!
//! The program sees `struct bpf_cgroup_dev_ctx { u32 access_type; u32 major; u32 minor; }`
//! with `access_type = access << 16 | type`. Rules are checked last to first and the first
//! match decides, so a later rule overrides an earlier one; no match denies.

use std::fs::OpenOptions;
use std::os::fd::OwnedFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};

use super::bpf::{self, Insn};
use crate::cgroups::{fs, CgroupError};

// Values of `struct bpf_cgroup_dev_ctx` (linux/bpf.h).
const DEV_BLOCK: i32 = 1;
const DEV_CHAR: i32 = 2;
const ACC_MKNOD: i32 = 1;
const ACC_READ: i32 = 2;
const ACC_WRITE: i32 = 4;
const ACC_ALL: i32 = ACC_MKNOD | ACC_READ | ACC_WRITE;

// Registers of the generated program.
const R0: u8 = 0;
const R1: u8 = 1;
const R_TYPE: u8 = 2;
const R_ACCESS: u8 = 3;
const R_MAJOR: u8 = 4;
const R_MINOR: u8 = 5;

/// A rule in the form the program checks; `None` fields match anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Rule {
    allow: bool,
    typ: Option<i32>,
    access: i32,
    major: Option<u32>,
    minor: Option<u32>,
}

fn convert(rule: &LinuxDeviceCgroup) -> Result<Option<Rule>, CgroupError> {
    let typ = match rule.typ().unwrap_or(LinuxDeviceType::A) {
        LinuxDeviceType::A => None,
        LinuxDeviceType::B => Some(DEV_BLOCK),
        LinuxDeviceType::C | LinuxDeviceType::U => Some(DEV_CHAR),
        // The kernel does not consult device programs for FIFOs.
        LinuxDeviceType::P => return Ok(None),
    };
    let mut access = 0;
    for ch in rule.access().as_deref().unwrap_or("").chars() {
        access |= match ch {
            'r' => ACC_READ,
            'w' => ACC_WRITE,
            'm' => ACC_MKNOD,
            _ => {
                return Err(CgroupError::Other(format!(
                    "device rule {rule}: invalid access {ch:?}"
                )))
            }
        };
    }
    if access == 0 {
        access = ACC_ALL;
    }
    let num = |n: Option<i64>| -> Result<Option<u32>, CgroupError> {
        match n {
            None => Ok(None),
            Some(n) if n < 0 => Ok(None),
            Some(n) => u32::try_from(n).map(Some).map_err(|_| {
                CgroupError::Other(format!("device rule {rule}: number {n} too large"))
            }),
        }
    };
    Ok(Some(Rule {
        allow: rule.allow(),
        typ,
        access,
        major: num(rule.major())?,
        minor: num(rule.minor())?,
    }))
}

/// The program for `rules`.
fn program(rules: &[LinuxDeviceCgroup]) -> Result<Vec<Insn>, CgroupError> {
    let mut p = vec![
        Insn::load_u32(R_TYPE, R1, 0),
        Insn::and32(R_TYPE, 0xffff),
        Insn::load_u32(R_ACCESS, R1, 0),
        Insn::rsh32(R_ACCESS, 16),
        Insn::load_u32(R_MAJOR, R1, 4),
        Insn::load_u32(R_MINOR, R1, 8),
    ];
    for rule in rules.iter().rev() {
        let Some(r) = convert(rule)? else {
            continue;
        };
        // Each check jumps to the end of this rule's block when it does not match.
        let mut checks: Vec<Insn> = Vec::new();
        if let Some(t) = r.typ {
            checks.push(Insn::jne32_imm(R_TYPE, t, 0));
        }
        if r.access != ACC_ALL {
            // Matches when every requested access bit is allowed by the rule.
            checks.push(Insn::mov32_reg(R1, R_ACCESS));
            checks.push(Insn::and32(R1, r.access));
            checks.push(Insn::jne32_reg(R1, R_ACCESS, 0));
        }
        if let Some(m) = r.major {
            checks.push(Insn::jne32_imm(R_MAJOR, m as i32, 0));
        }
        if let Some(m) = r.minor {
            checks.push(Insn::jne32_imm(R_MINOR, m as i32, 0));
        }
        let unconditional = checks.is_empty();
        checks.push(Insn::mov64_imm(R0, i32::from(r.allow)));
        checks.push(Insn::exit());
        let len = checks.len();
        for (i, insn) in checks.iter_mut().enumerate() {
            if insn.code & 0x07 == 0x06 {
                insn.off = (len - i - 1) as i16;
            }
        }
        p.extend(checks);
        if unconditional {
            // Earlier rules can never be reached, and the verifier rejects dead code.
            return Ok(p);
        }
    }
    p.push(Insn::mov64_imm(R0, 0));
    p.push(Insn::exit());
    Ok(p)
}

/// Loads the program for `rules` and attaches it to the cgroup `dir`, then detaches the
/// programs that were attached before, so there is no moment without a filter.
pub(super) fn apply(dir: &Path, rules: &[LinuxDeviceCgroup]) -> Result<(), CgroupError> {
    let insns = program(rules)?;
    let cgroup: OwnedFd = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(dir)
        .map_err(fs::io_err(dir))?
        .into();
    let old = bpf::query_device_programs(&cgroup)?;
    let prog = bpf::load_device_program(&insns)?;
    bpf::attach_device_program(&cgroup, &prog)?;
    for id in old {
        bpf::detach_device_program(&cgroup, id)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the program on one access the way the kernel would, checking on the way that
    /// jumps go forward and stay inside, and that every instruction is reachable.
    fn run(p: &[Insn], typ: i32, access: i32, major: u32, minor: u32) -> bool {
        let ctx = [((access << 16) | typ) as u32, major, minor];
        let mut reg = [0u64; 11];
        let mut pc = 0;
        loop {
            let i = p[pc];
            let (d, s) = (i.dst() as usize, i.src() as usize);
            match i.code {
                0x61 => reg[d] = u64::from(ctx[i.off as usize / 4]),
                0x54 => reg[d] = (reg[d] as u32 & i.imm as u32) as u64,
                0x74 => reg[d] = ((reg[d] as u32) >> i.imm) as u64,
                0xbc => reg[d] = reg[s] as u32 as u64,
                0xb7 => reg[d] = i.imm as i64 as u64,
                0x56 | 0x5e => {
                    let rhs = if i.code == 0x56 {
                        i.imm as u32
                    } else {
                        reg[s] as u32
                    };
                    assert!(
                        i.off >= 0 && pc + (i.off as usize) < p.len(),
                        "bad jump at {pc}"
                    );
                    if reg[d] as u32 != rhs {
                        pc += i.off as usize;
                    }
                }
                0x95 => return reg[0] == 1,
                c => panic!("unknown opcode {c:#x}"),
            }
            pc += 1;
        }
    }

    fn reachable_all(p: &[Insn]) {
        let mut seen = vec![false; p.len()];
        let mut todo = vec![0usize];
        while let Some(pc) = todo.pop() {
            if pc >= p.len() || seen[pc] {
                continue;
            }
            seen[pc] = true;
            match p[pc].code {
                0x95 => {}
                0x56 | 0x5e => {
                    todo.push(pc + 1);
                    todo.push(pc + 1 + p[pc].off as usize);
                }
                _ => todo.push(pc + 1),
            }
        }
        assert!(
            seen.iter().all(|s| *s),
            "unreachable instructions: {seen:?}"
        );
        assert_eq!(p.last().map(|i| i.code), Some(0x95));
    }

    fn rules(json: &str) -> Vec<LinuxDeviceCgroup> {
        serde_json::from_str(json).unwrap()
    }

    const RW: i32 = ACC_READ | ACC_WRITE;

    #[test]
    fn default_deny_with_allowlist() {
        let r = rules(
            r#"[{"allow":false,"access":"rwm"},
                {"allow":true,"type":"c","major":1,"minor":3,"access":"rwm"},
                {"allow":true,"type":"c","major":1,"minor":5,"access":"r"},
                {"allow":true,"type":"c","major":136,"access":"rwm"},
                {"allow":true,"type":"b","major":8,"minor":0,"access":"m"}]"#,
        );
        let p = program(&r).unwrap();
        reachable_all(&p);
        assert!(run(&p, DEV_CHAR, RW, 1, 3));
        assert!(run(&p, DEV_CHAR, ACC_READ, 1, 5));
        assert!(!run(&p, DEV_CHAR, RW, 1, 5), "write not allowed on 1:5");
        assert!(run(&p, DEV_CHAR, ACC_WRITE, 136, 42));
        assert!(!run(&p, DEV_BLOCK, ACC_READ, 1, 3), "type must match");
        assert!(run(&p, DEV_BLOCK, ACC_MKNOD, 8, 0));
        assert!(!run(&p, DEV_BLOCK, ACC_READ, 8, 0));
        assert!(!run(&p, DEV_CHAR, ACC_READ, 4, 1));
    }

    #[test]
    fn later_rules_win_and_dead_code_is_cut() {
        let r = rules(
            r#"[{"allow":true,"type":"c","major":1,"minor":3},
                {"allow":true},
                {"allow":false,"type":"c","major":1,"minor":3,"access":"rwm"}]"#,
        );
        let p = program(&r).unwrap();
        reachable_all(&p);
        assert!(!run(&p, DEV_CHAR, ACC_READ, 1, 3));
        assert!(run(&p, DEV_CHAR, ACC_READ, 1, 5));
        assert!(run(&p, DEV_BLOCK, RW, 8, 1));
        // The first rule is shadowed by the allow-all: the program stops after it.
        let allow_all = Insn::mov64_imm(R0, 1);
        assert_eq!(p[p.len() - 2], allow_all);
    }

    #[test]
    fn no_rules_denies_everything_and_fifo_rules_are_skipped() {
        let p = program(&[]).unwrap();
        reachable_all(&p);
        assert!(!run(&p, DEV_CHAR, ACC_READ, 1, 3));
        let p = program(&rules(r#"[{"allow":true,"type":"p"}]"#)).unwrap();
        assert!(!run(&p, DEV_CHAR, ACC_READ, 1, 3));
    }

    #[test]
    fn large_numbers_and_bad_access() {
        let r = rules(r#"[{"allow":true,"type":"c","major":4294967295,"minor":0}]"#);
        let p = program(&r).unwrap();
        assert!(run(&p, DEV_CHAR, ACC_READ, u32::MAX, 0));
        assert!(!run(&p, DEV_CHAR, ACC_READ, u32::MAX - 1, 0));
        assert!(program(&rules(r#"[{"allow":true,"major":4294967296}]"#)).is_err());
        assert!(program(&rules(r#"[{"allow":true,"access":"rx"}]"#)).is_err());
    }
}
