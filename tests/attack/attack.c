/*
 * attack: raw syscalls a container must not be allowed to make, for Berth's security battery
 * (tests/tests/security_battery_*.rs). Built static by tests/src/attack.rs with `gcc -static`
 * and bind-mounted or copied into a test image.
 *
 * It refuses to run unless /.berth-test-rootfs exists (tests/src/rootfs.rs SENTINEL), so it
 * never makes these calls on the host by mistake.
 *
 * Usage: attack <case> [args...]. Each case makes one call with arguments that would be
 * harmless on the host even if the call went through, and prints exactly one line:
 *   "<case>: ok"            the call succeeded (the test then fails)
 *   "<case>: errno=<NAME>"  the call failed with that errno
 * plus, for `ids`, the process's real/effective/saved ids.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <linux/kexec.h>
#include <linux/keyctl.h>
#include <linux/perf_event.h>
#include <linux/reboot.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/io.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *errno_name(int e)
{
    switch (e) {
    case EPERM: return "EPERM";
    case ENOENT: return "ENOENT";
    case ESRCH: return "ESRCH";
    case EIO: return "EIO";
    case ENXIO: return "ENXIO";
    case EBADF: return "EBADF";
    case EAGAIN: return "EAGAIN";
    case ENOMEM: return "ENOMEM";
    case EACCES: return "EACCES";
    case EFAULT: return "EFAULT";
    case EBUSY: return "EBUSY";
    case EEXIST: return "EEXIST";
    case ENODEV: return "ENODEV";
    case ENOTDIR: return "ENOTDIR";
    case EINVAL: return "EINVAL";
    case ETXTBSY: return "ETXTBSY";
    case ENOSPC: return "ENOSPC";
    case EROFS: return "EROFS";
    case ENOSYS: return "ENOSYS";
    case ENOEXEC: return "ENOEXEC";
    case EOPNOTSUPP: return "EOPNOTSUPP";
    case ELOOP: return "ELOOP";
    case ENOTCONN: return "ENOTCONN";
    case ECONNREFUSED: return "ECONNREFUSED";
    default: return "OTHER";
    }
}

static int report(const char *name, long rc)
{
    if (rc < 0)
        printf("%s: errno=%s (%d)\n", name, errno_name(errno), errno);
    else
        printf("%s: ok\n", name);
    fflush(stdout);
    return 0;
}

/* The i386 and x32 entry points: seccomp must filter them as well as the native one. */
static long mount_i386(void)
{
    long rc;
    static const char src[] = "none", dst[] = "/tmp", typ[] = "tmpfs";
    /* i386 mount is 21; pointers fit in 32 bits in a static non-PIE binary. */
    __asm__ volatile("int $0x80"
                     : "=a"(rc)
                     : "a"(21L), "b"(src), "c"(dst), "d"(typ), "S"(0L), "D"(0L)
                     : "memory");
    if (rc < 0 && rc > -4096) {
        errno = (int)-rc;
        return -1;
    }
    return rc;
}

static long mount_x32(void)
{
    return syscall(0x40000000L | SYS_mount, "none", "/tmp", "tmpfs", 0L, NULL);
}

static long do_ptrace_pid(pid_t pid)
{
    long rc = ptrace(PTRACE_ATTACH, pid, NULL, NULL);
    if (rc == 0) {
        waitpid(pid, NULL, __WALL);
        ptrace(PTRACE_DETACH, pid, NULL, NULL);
    }
    return rc;
}

static long do_bpf(void)
{
    union bpf_attr attr;
    memset(&attr, 0, sizeof attr);
    attr.map_type = BPF_MAP_TYPE_ARRAY;
    attr.key_size = 4;
    attr.value_size = 4;
    attr.max_entries = 1;
    return syscall(SYS_bpf, BPF_MAP_CREATE, &attr, sizeof attr);
}

static long do_perf(void)
{
    struct perf_event_attr attr;
    memset(&attr, 0, sizeof attr);
    attr.type = PERF_TYPE_SOFTWARE;
    attr.size = sizeof attr;
    attr.config = PERF_COUNT_SW_CPU_CLOCK;
    attr.disabled = 1;
    return syscall(SYS_perf_event_open, &attr, 0, -1, -1, 0UL);
}

static long do_settime(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return settimeofday(&tv, NULL);
}

static long do_clock_settime(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return clock_settime(CLOCK_REALTIME, &ts);
}

/* Opens a path (r or w) and reads or writes one byte. */
static long do_open(const char *path, const char *mode)
{
    int w = mode[0] == 'w';
    int fd = open(path, w ? O_WRONLY : O_RDONLY);
    if (fd < 0)
        return -1;
    char c = '0';
    long rc = w ? write(fd, &c, 1) : read(fd, &c, 1);
    int saved = errno;
    close(fd);
    errno = saved;
    return rc;
}

static long do_rlimit_raise(void)
{
    struct rlimit r;
    if (getrlimit(RLIMIT_NOFILE, &r) < 0)
        return -1;
    printf("nofile hard=%llu\n", (unsigned long long)r.rlim_max);
    if (r.rlim_max == RLIM_INFINITY) {
        errno = EINVAL;
        return -1;
    }
    r.rlim_max += 1;
    r.rlim_cur = r.rlim_max;
    return setrlimit(RLIMIT_NOFILE, &r);
}

/* The "shocker" escape: open_by_handle_at with a brute-forced handle for the host's root. */
static long do_open_by_handle(void)
{
    struct {
        struct file_handle h;
        unsigned char bytes[8];
    } fh;
    memset(&fh, 0, sizeof fh);
    fh.h.handle_bytes = 8;
    fh.h.handle_type = 1;
    *(unsigned int *)fh.h.f_handle = 2; /* inode 2: the root of most filesystems */
    int mfd = open("/etc/hostname", O_RDONLY);
    if (mfd < 0)
        return -1;
    return syscall(SYS_open_by_handle_at, mfd, &fh.h, O_RDONLY);
}

static long do_mknod(const char *path, const char *kind, const char *maj, const char *min)
{
    mode_t type = kind[0] == 'b' ? S_IFBLK : S_IFCHR;
    dev_t dev = makedev(atoi(maj), atoi(min));
    return mknod(path, type | 0600, dev);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: attack <case> [args]\n");
        return 2;
    }
    /* Never on the host: only inside a test rootfs, which holds this marker file. */
    if (access("/.berth-test-rootfs", F_OK) != 0) {
        fprintf(stderr, "attack: not inside a Berth test rootfs, refusing\n");
        return 3;
    }
    const char *c = argv[1];
    const char *a = argc > 2 ? argv[2] : "";
    const char *b = argc > 3 ? argv[3] : "";
    if (!strcmp(c, "ids")) {
        uid_t r, e, s;
        gid_t gr, ge, gs;
        getresuid(&r, &e, &s);
        getresgid(&gr, &ge, &gs);
        printf("uid=%u euid=%u suid=%u gid=%u egid=%u sgid=%u\n", r, e, s, gr, ge, gs);
        return 0;
    }
    if (!strcmp(c, "setuid0"))
        return report(c, setuid(0));
    if (!strcmp(c, "mount"))
        return report(c, mount("none", "/tmp", "tmpfs", 0, NULL));
    if (!strcmp(c, "mount-i386"))
        return report(c, mount_i386());
    if (!strcmp(c, "mount-x32"))
        return report(c, mount_x32());
    if (!strcmp(c, "remount-proc-rw"))
        return report(c, mount(NULL, "/proc/sys", NULL, MS_REMOUNT | MS_BIND, NULL));
    if (!strcmp(c, "umount"))
        return report(c, umount2(argc > 2 ? a : "/proc/kcore", MNT_DETACH));
    if (!strcmp(c, "pivot_root"))
        return report(c, syscall(SYS_pivot_root, "/tmp", "/tmp"));
    if (!strcmp(c, "unshare-user"))
        return report(c, unshare(CLONE_NEWUSER));
    if (!strcmp(c, "unshare-mnt"))
        return report(c, unshare(CLONE_NEWNS));
    if (!strcmp(c, "clone-newuser")) {
        long rc = syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, NULL, NULL, NULL, NULL);
        if (rc == 0)
            _exit(0);
        if (rc > 0)
            waitpid(rc, NULL, 0);
        return report(c, rc);
    }
    if (!strcmp(c, "setns"))
        return report(c, setns(open("/proc/1/ns/mnt", O_RDONLY), 0));
    if (!strcmp(c, "keyctl"))
        return report(c, syscall(SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, "berth-battery"));
    if (!strcmp(c, "add_key"))
        return report(c, syscall(SYS_add_key, "user", "berth-battery", "x", 1,
                                 KEY_SPEC_PROCESS_KEYRING));
    if (!strcmp(c, "ptrace"))
        return report(c, do_ptrace_pid(argc > 2 ? atoi(a) : 1));
    if (!strcmp(c, "bpf"))
        return report(c, do_bpf());
    if (!strcmp(c, "perf_event_open"))
        return report(c, do_perf());
    if (!strcmp(c, "init_module")) {
        static char image[64];
        return report(c, syscall(SYS_init_module, image, sizeof image, ""));
    }
    if (!strcmp(c, "finit_module"))
        return report(c, syscall(SYS_finit_module, open("/bin/attack", O_RDONLY), "", 0));
    if (!strcmp(c, "delete_module"))
        return report(c, syscall(SYS_delete_module, "berth_battery_none", O_NONBLOCK));
    if (!strcmp(c, "reboot"))
        return report(c, syscall(SYS_reboot, LINUX_REBOOT_MAGIC1, LINUX_REBOOT_MAGIC2,
                                 LINUX_REBOOT_CMD_CAD_OFF, NULL));
    if (!strcmp(c, "settimeofday"))
        return report(c, do_settime());
    if (!strcmp(c, "clock_settime"))
        return report(c, do_clock_settime());
    if (!strcmp(c, "kexec_load"))
        return report(c, syscall(SYS_kexec_load, 0UL, 0UL, NULL, 0UL));
    if (!strcmp(c, "kexec_file_load"))
        return report(c, syscall(SYS_kexec_file_load, -1, -1, 0UL, NULL,
                                 (unsigned long)KEXEC_FILE_UNLOAD));
    if (!strcmp(c, "iopl"))
        return report(c, iopl(3));
    if (!strcmp(c, "ioperm"))
        return report(c, ioperm(0x80, 1, 1));
    if (!strcmp(c, "syslog"))
        return report(c, syscall(SYS_syslog, 3 /* READ_ALL */, (char[64]){0}, 64));
    if (!strcmp(c, "open_by_handle_at"))
        return report(c, do_open_by_handle());
    if (!strcmp(c, "swapon"))
        return report(c, syscall(SYS_swapon, "/bin/attack", 0));
    if (!strcmp(c, "acct"))
        return report(c, syscall(SYS_acct, "/tmp/acct"));
    if (!strcmp(c, "rlimit-raise"))
        return report(c, do_rlimit_raise());
    if (!strcmp(c, "open"))
        return report(c, do_open(a, b));
    if (!strcmp(c, "mknod"))
        return report(c, do_mknod(a, b, argc > 4 ? argv[4] : "0", argc > 5 ? argv[5] : "0"));
    if (!strcmp(c, "chdir-fds")) {
        /* fchdir into every fd number up to 64: none may lead outside the rootfs. */
        for (int fd = 3; fd < 64; fd++) {
            char cwd[4096];
            if (fchdir(fd) == 0 && getcwd(cwd, sizeof cwd))
                printf("fd %d: cwd %s\n", fd, cwd);
        }
        return report(c, 0);
    }
    fprintf(stderr, "attack: unknown case %s\n", c);
    return 2;
}
