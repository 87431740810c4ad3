//! A small eBPF instruction encoder and the `bpf(2)` calls needed to load a
//! `BPF_PROG_TYPE_CGROUP_DEVICE` program and attach it to (or detach it from) a cgroup.

use std::ffi::c_void;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use crate::cgroups::CgroupError;

// Instruction classes, sizes, modes, operations (linux/bpf_common.h, linux/bpf.h).
const CLASS_LDX: u8 = 0x01;
const CLASS_ALU: u8 = 0x04;
const CLASS_JMP: u8 = 0x05;
const CLASS_JMP32: u8 = 0x06;
const CLASS_ALU64: u8 = 0x07;
const SIZE_W: u8 = 0x00;
const MODE_MEM: u8 = 0x60;
const SRC_K: u8 = 0x00;
const SRC_X: u8 = 0x08;
const OP_AND: u8 = 0x50;
const OP_RSH: u8 = 0x70;
const OP_MOV: u8 = 0xb0;
const OP_JNE: u8 = 0x50;
const OP_EXIT: u8 = 0x90;

/// One eBPF instruction, laid out as `struct bpf_insn`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C)]
pub(super) struct Insn {
    pub(super) code: u8,
    /// dst register in the low nibble, src register in the high nibble.
    pub(super) regs: u8,
    pub(super) off: i16,
    pub(super) imm: i32,
}

fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        regs: (dst & 0xf) | (src << 4),
        off,
        imm,
    }
}

impl Insn {
    /// `dst = *(u32 *)(src + off)`.
    pub(super) fn load_u32(dst: u8, src: u8, off: i16) -> Insn {
        insn(CLASS_LDX | SIZE_W | MODE_MEM, dst, src, off, 0)
    }
    /// `dst = (u32)dst & imm`.
    pub(super) fn and32(dst: u8, imm: i32) -> Insn {
        insn(CLASS_ALU | OP_AND | SRC_K, dst, 0, 0, imm)
    }
    /// `dst = (u32)dst >> imm`.
    pub(super) fn rsh32(dst: u8, imm: i32) -> Insn {
        insn(CLASS_ALU | OP_RSH | SRC_K, dst, 0, 0, imm)
    }
    /// `dst = (u32)src`.
    pub(super) fn mov32_reg(dst: u8, src: u8) -> Insn {
        insn(CLASS_ALU | OP_MOV | SRC_X, dst, src, 0, 0)
    }
    /// `dst = imm`.
    pub(super) fn mov64_imm(dst: u8, imm: i32) -> Insn {
        insn(CLASS_ALU64 | OP_MOV | SRC_K, dst, 0, 0, imm)
    }
    /// `if (u32)dst != (u32)imm goto +off`.
    pub(super) fn jne32_imm(dst: u8, imm: i32, off: i16) -> Insn {
        insn(CLASS_JMP32 | OP_JNE | SRC_K, dst, 0, off, imm)
    }
    /// `if (u32)dst != (u32)src goto +off`.
    pub(super) fn jne32_reg(dst: u8, src: u8, off: i16) -> Insn {
        insn(CLASS_JMP32 | OP_JNE | SRC_X, dst, src, off, 0)
    }
    /// `return r0`.
    pub(super) fn exit() -> Insn {
        insn(CLASS_JMP | OP_EXIT, 0, 0, 0, 0)
    }
    #[cfg(test)]
    pub(super) fn dst(&self) -> u8 {
        self.regs & 0xf
    }
    #[cfg(test)]
    pub(super) fn src(&self) -> u8 {
        self.regs >> 4
    }
}

// bpf(2) commands, program and attach types, flags.
const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_DETACH: libc::c_long = 9;
const BPF_PROG_GET_FD_BY_ID: libc::c_long = 13;
const BPF_PROG_QUERY: libc::c_long = 16;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
const BPF_F_ALLOW_MULTI: u32 = 2;

/// The leading fields of `union bpf_attr` for `BPF_PROG_LOAD`.
#[repr(C)]
#[derive(Default)]
struct LoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

/// `union bpf_attr` for `BPF_PROG_ATTACH` and `BPF_PROG_DETACH`.
#[repr(C)]
#[derive(Default)]
struct AttachAttr {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
    replace_bpf_fd: u32,
    _pad: u32,
}

/// `union bpf_attr` for `BPF_PROG_QUERY`.
#[repr(C)]
#[derive(Default)]
struct QueryAttr {
    target_fd: u32,
    attach_type: u32,
    query_flags: u32,
    attach_flags: u32,
    prog_ids: u64,
    prog_cnt: u32,
    _pad: u32,
}

/// `union bpf_attr` for `BPF_PROG_GET_FD_BY_ID`.
#[repr(C)]
#[derive(Default)]
struct GetFdAttr {
    prog_id: u32,
    next_id: u32,
    open_flags: u32,
}

fn bpf<T>(cmd: libc::c_long, attr: &mut T, what: &str) -> Result<libc::c_long, CgroupError> {
    // SAFETY: `attr` is a live, initialised `#[repr(C)]` prefix of `union bpf_attr` for `cmd`,
    // and its size is passed, so the kernel reads and writes only inside it. Pointers inside
    // it refer to buffers the callers keep alive across this call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut T as *mut c_void,
            std::mem::size_of::<T>() as libc::c_uint,
        )
    };
    if r < 0 {
        let e = std::io::Error::last_os_error();
        return Err(CgroupError::Other(format!("bpf({what}): {e}")));
    }
    Ok(r)
}

/// Takes ownership of a file descriptor the kernel just returned.
fn owned(fd: libc::c_long) -> OwnedFd {
    // SAFETY: `fd` was just returned by bpf(2) as a new descriptor that nothing else owns.
    unsafe { OwnedFd::from_raw_fd(fd as i32) }
}

/// Loads `insns` as a cgroup device program; on a verifier rejection the error carries the
/// verifier's log.
pub(super) fn load_device_program(insns: &[Insn]) -> Result<OwnedFd, CgroupError> {
    let license = c"Apache";
    let mut attr = LoadAttr {
        prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
        insn_cnt: insns.len() as u32,
        insns: insns.as_ptr() as u64,
        license: license.as_ptr() as u64,
        ..Default::default()
    };
    attr.prog_name[..11].copy_from_slice(b"berth_devcg");
    match bpf(BPF_PROG_LOAD, &mut attr, "BPF_PROG_LOAD") {
        Ok(fd) => Ok(owned(fd)),
        Err(first) => {
            let mut log = vec![0u8; 64 * 1024];
            attr.log_level = 1;
            attr.log_size = log.len() as u32;
            attr.log_buf = log.as_mut_ptr() as u64;
            if let Ok(fd) = bpf(BPF_PROG_LOAD, &mut attr, "BPF_PROG_LOAD") {
                return Ok(owned(fd));
            }
            let end = log.iter().position(|b| *b == 0).unwrap_or(log.len());
            Err(CgroupError::Other(format!(
                "{first}; verifier log: {}",
                String::from_utf8_lossy(&log[..end]).trim()
            )))
        }
    }
}

/// Attaches `prog` to the cgroup open as `cgroup` (`BPF_F_ALLOW_MULTI`).
pub(super) fn attach_device_program(cgroup: &OwnedFd, prog: &OwnedFd) -> Result<(), CgroupError> {
    let mut attr = AttachAttr {
        target_fd: cgroup.as_raw_fd() as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: BPF_F_ALLOW_MULTI,
        ..Default::default()
    };
    bpf(BPF_PROG_ATTACH, &mut attr, "BPF_PROG_ATTACH").map(|_| ())
}

/// Ids of the device programs attached directly to the cgroup.
pub(super) fn query_device_programs(cgroup: &OwnedFd) -> Result<Vec<u32>, CgroupError> {
    let mut ids = vec![0u32; 64];
    let mut attr = QueryAttr {
        target_fd: cgroup.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        prog_ids: ids.as_mut_ptr() as u64,
        prog_cnt: ids.len() as u32,
        ..Default::default()
    };
    bpf(BPF_PROG_QUERY, &mut attr, "BPF_PROG_QUERY")?;
    ids.truncate(attr.prog_cnt as usize);
    Ok(ids)
}

/// Detaches the program with id `id` from the cgroup.
pub(super) fn detach_device_program(cgroup: &OwnedFd, id: u32) -> Result<(), CgroupError> {
    let mut get = GetFdAttr {
        prog_id: id,
        ..Default::default()
    };
    let prog = owned(bpf(
        BPF_PROG_GET_FD_BY_ID,
        &mut get,
        "BPF_PROG_GET_FD_BY_ID",
    )?);
    let mut attr = AttachAttr {
        target_fd: cgroup.as_raw_fd() as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        ..Default::default()
    };
    bpf(BPF_PROG_DETACH, &mut attr, "BPF_PROG_DETACH").map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodings_match_the_kernel_abi() {
        assert_eq!(std::mem::size_of::<Insn>(), 8);
        assert_eq!(std::mem::size_of::<LoadAttr>(), 72);
        assert_eq!(std::mem::size_of::<QueryAttr>(), 32);
        // r2 = *(u32 *)(r1 + 4)
        assert_eq!(
            Insn::load_u32(2, 1, 4),
            Insn {
                code: 0x61,
                regs: 0x12,
                off: 4,
                imm: 0
            }
        );
        assert_eq!(Insn::and32(2, 0xffff).code, 0x54);
        assert_eq!(Insn::rsh32(3, 16).code, 0x74);
        assert_eq!(Insn::mov32_reg(1, 3).code, 0xbc);
        assert_eq!(Insn::mov32_reg(1, 3).regs, 0x31);
        assert_eq!(Insn::mov64_imm(0, 1).code, 0xb7);
        assert_eq!(Insn::jne32_imm(4, 1, 3).code, 0x56);
        assert_eq!(Insn::jne32_reg(1, 3, 2).code, 0x5e);
        assert_eq!(Insn::exit().code, 0x95);
        let i = Insn::jne32_reg(1, 3, 2);
        assert_eq!((i.dst(), i.src(), i.off), (1, 3, 2));
    }
}
