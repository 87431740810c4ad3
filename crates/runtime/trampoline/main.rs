//! berth-exec: the last program a container's init runs before its own.
//!
//! When the runtime's binary is not on a read-only mount (berth-oci run straight from the host
//! path), the init does not exec the container's program itself: it execs this trampoline from
//! a sealed memfd, and the trampoline execs the program. `/proc/self/exe` at the moment the
//! program is executed therefore names the sealed memfd, never the host binary, so a program
//! like `#!/proc/self/exe` cannot reach the runtime's file (the CVE-2019-5736 class).
//!
//! Calling convention: `argv = [path, argv0, argv1, ...]`; the trampoline runs
//! `execve(path, [argv0, argv1, ...], envp)`. No libc, no allocation, a few hundred bytes.

#![no_std]
#![no_main]

use core::arch::{asm, global_asm};

#[cfg(target_arch = "x86_64")]
global_asm!(
    ".globl _start",
    "_start:",
    "xor ebp, ebp",
    "mov rdi, rsp",
    "and rsp, -16",
    "call {entry}",
    "ud2",
    entry = sym entry,
);

#[cfg(target_arch = "aarch64")]
global_asm!(
    ".globl _start",
    "_start:",
    "mov x0, sp",
    "bl {entry}",
    "brk #0",
    entry = sym entry,
);

#[cfg(target_arch = "x86_64")]
mod nr {
    pub const WRITE: usize = 1;
    pub const EXECVE: usize = 59;
    pub const EXIT_GROUP: usize = 231;
}

#[cfg(target_arch = "aarch64")]
mod nr {
    pub const WRITE: usize = 64;
    pub const EXECVE: usize = 221;
    pub const EXIT_GROUP: usize = 94;
}

#[cfg(target_arch = "x86_64")]
unsafe fn syscall3(n: usize, a: usize, b: usize, c: usize) -> isize {
    let ret: isize;
    asm!("syscall", inlateout("rax") n as isize => ret, in("rdi") a, in("rsi") b, in("rdx") c,
         lateout("rcx") _, lateout("r11") _, options(nostack));
    ret
}

#[cfg(target_arch = "aarch64")]
unsafe fn syscall3(n: usize, a: usize, b: usize, c: usize) -> isize {
    let ret: isize;
    asm!("svc 0", in("x8") n, inlateout("x0") a as isize => ret, in("x1") b, in("x2") c,
         options(nostack));
    ret
}

unsafe fn write_all(bytes: &[u8]) {
    let mut done = 0;
    while done < bytes.len() {
        let n = syscall3(nr::WRITE, 2, bytes.as_ptr().add(done) as usize, bytes.len() - done);
        if n <= 0 {
            return;
        }
        done += n as usize;
    }
}

unsafe fn c_str<'a>(p: *const u8) -> &'a [u8] {
    // Volatile reads: a plain loop would be turned into a call of libc's strlen, which we lack.
    let mut len = 0;
    while core::ptr::read_volatile(p.add(len)) != 0 {
        len += 1;
    }
    core::slice::from_raw_parts(p, len)
}

unsafe fn exit(code: usize) -> ! {
    loop {
        syscall3(nr::EXIT_GROUP, code, 0, 0);
    }
}

/// What the likely failures of execve mean, as strerror would say it.
fn errno_text(errno: isize) -> &'static [u8] {
    match errno {
        1 => b"Operation not permitted",
        2 => b"No such file or directory",
        7 => b"Argument list too long",
        8 => b"Exec format error",
        12 => b"Cannot allocate memory",
        13 => b"Permission denied",
        20 => b"Not a directory",
        26 => b"Text file busy",
        40 => b"Too many levels of symbolic links",
        _ => b"exec failed",
    }
}

/// `sp` points at argc, followed by argv, NULL, envp, NULL (the ELF entry stack).
unsafe extern "C" fn entry(sp: *const usize) -> ! {
    let argc = *sp;
    let argv = sp.add(1) as *const *const u8;
    let envp = argv.add(argc + 1);
    if argc < 2 {
        write_all(b"berth-exec: no program to run\n");
        exit(127);
    }
    let path = *argv;
    let errno = -syscall3(nr::EXECVE, path as usize, argv.add(1) as usize, envp as usize);
    // Same wording as the runtime's own exec errors, then the shell's exit codes.
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    let mut v = errno as usize;
    loop {
        i -= 1;
        digits[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    write_all(b"berth: exec ");
    write_all(c_str(path));
    write_all(b": ");
    write_all(errno_text(errno));
    write_all(b" (errno ");
    write_all(&digits[i..]);
    write_all(b")\n");
    exit(if errno == 2 { 127 } else { 126 })
}

/// core's unwinding tables name this symbol; with panic=abort nothing ever calls it.
#[no_mangle]
extern "C" fn rust_eh_personality() {}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    // SAFETY: exit_group takes no pointers.
    unsafe { exit(127) }
}
