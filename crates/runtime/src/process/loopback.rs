//! Bringing up `lo` in a new network namespace, so a container without any other network
//! still talks to itself (docker's `--network none` behaviour) without a CNI plugin run.

use super::ProcessError;

/// Sets IFF_UP on `lo` of the calling process's network namespace.
pub(crate) fn up() -> Result<(), ProcessError> {
    // SAFETY: a plain socket for the interface ioctls; closed below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(ProcessError::sys(
            "socket for lo",
            nix::errno::Errno::last(),
        ));
    }
    // SAFETY: ifreq is plain old data; zeroed is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = *src as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS/SIOCSIFFLAGS read and write `req`, which outlives the calls.
    let result = unsafe {
        if libc::ioctl(fd, libc::SIOCGIFFLAGS, &mut req) < 0 {
            Err(nix::errno::Errno::last())
        } else {
            req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
            if libc::ioctl(fd, libc::SIOCSIFFLAGS, &req) < 0 {
                Err(nix::errno::Errno::last())
            } else {
                Ok(())
            }
        }
    };
    // SAFETY: our socket.
    unsafe { libc::close(fd) };
    result.map_err(|e| ProcessError::sys("bringing up lo", e))
}
