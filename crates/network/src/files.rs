//! The files a container's network identity lives in: `/etc/hosts`, `/etc/resolv.conf` and
//! `/etc/hostname`, written on the host (for instance into the bundle) and bind-mounted into
//! the container.

use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use crate::cni::Dns;
use crate::fsutil;

/// Writing a container file failed.
#[derive(Debug, thiserror::Error)]
pub enum FilesError {
    /// The hostname is not a valid host name.
    #[error("invalid hostname {0:?}")]
    InvalidHostname(String),
    /// Reading or writing a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

/// Whether `name` is a valid host name: 1..=253 bytes of dot-separated labels of 1..=63
/// letters, digits and inner hyphens.
pub fn is_valid_hostname(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

/// Writes an `/etc/hosts`: localhost for 127.0.0.1 and ::1, the container's address for
/// `hostname` (or, without an address, `hostname` on the loopback lines so it still
/// resolves), then `extra` entries (`--add-host NAME:IP`).
pub fn write_hosts(
    path: &Path,
    hostname: &str,
    ip: Option<IpAddr>,
    extra: &[(String, IpAddr)],
) -> Result<(), FilesError> {
    if !is_valid_hostname(hostname) {
        return Err(FilesError::InvalidHostname(hostname.to_string()));
    }
    let mut out = String::new();
    match ip {
        Some(ip) => {
            out.push_str("127.0.0.1\tlocalhost\n");
            out.push_str("::1\tlocalhost ip6-localhost ip6-loopback\n");
            let _ = writeln!(out, "{ip}\t{hostname}");
        }
        None => {
            let _ = writeln!(out, "127.0.0.1\tlocalhost {hostname}");
            let _ = writeln!(out, "::1\tlocalhost ip6-localhost ip6-loopback {hostname}");
        }
    }
    for (name, addr) in extra {
        if !is_valid_hostname(name) {
            return Err(FilesError::InvalidHostname(name.clone()));
        }
        let _ = writeln!(out, "{addr}\t{name}");
    }
    write(path, &out)
}

/// Writes `/etc/hostname`.
pub fn write_hostname(path: &Path, hostname: &str) -> Result<(), FilesError> {
    if !is_valid_hostname(hostname) {
        return Err(FilesError::InvalidHostname(hostname.to_string()));
    }
    write(path, &format!("{hostname}\n"))
}

/// The host's resolver configuration to derive containers' from: `/etc/resolv.conf`, unless it
/// names only loopback name servers (a local stub such as systemd-resolved's 127.0.0.53) and
/// `/run/systemd/resolve/resolv.conf` (the stub's upstream servers) exists.
pub fn host_resolv_conf() -> PathBuf {
    let etc = PathBuf::from("/etc/resolv.conf");
    let upstream = PathBuf::from("/run/systemd/resolve/resolv.conf");
    let only_loopback = std::fs::read_to_string(&etc).is_ok_and(|s| {
        let filtered = filter_loopback_nameservers(&s);
        s.lines().any(is_nameserver_line) && !filtered.lines().any(is_nameserver_line)
    });
    if only_loopback && upstream.is_file() {
        upstream
    } else {
        etc
    }
}

fn is_nameserver_line(line: &str) -> bool {
    line.split_whitespace().next() == Some("nameserver")
}

/// Writes a container's `/etc/resolv.conf`.
///
/// With DNS settings from the CNI result that name servers, those are written. Otherwise the
/// host's file (`host_resolv`, normally `/etc/resolv.conf`) is used: in a private network
/// namespace (`host_network` false) its loopback name servers (127.x, ::1, such as a local
/// resolver stub) are dropped, since they cannot be reached from the container; when that
/// leaves no name server at all, the host's file is copied unchanged (nothing better is known
/// offline). With `host_network` the host's file is copied as is.
pub fn write_resolv_conf(
    path: &Path,
    dns: Option<&Dns>,
    host_resolv: &Path,
    host_network: bool,
) -> Result<(), FilesError> {
    if let Some(dns) = dns.filter(|d| !d.nameservers.is_empty()) {
        return write(path, &render_dns(dns));
    }
    let host = match std::fs::read_to_string(host_resolv) {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(source) => {
            return Err(FilesError::Io {
                path: host_resolv.to_path_buf(),
                source,
            })
        }
    };
    if host_network {
        return write(path, &host);
    }
    let filtered = filter_loopback_nameservers(&host);
    let has_nameserver = filtered.lines().any(is_nameserver_line);
    write(path, if has_nameserver { &filtered } else { &host })
}

fn render_dns(dns: &Dns) -> String {
    let mut out = String::new();
    if let Some(domain) = &dns.domain {
        let _ = writeln!(out, "domain {domain}");
    }
    if !dns.search.is_empty() {
        let _ = writeln!(out, "search {}", dns.search.join(" "));
    }
    for ns in &dns.nameservers {
        let _ = writeln!(out, "nameserver {ns}");
    }
    if !dns.options.is_empty() {
        let _ = writeln!(out, "options {}", dns.options.join(" "));
    }
    out
}

/// Drops `nameserver` lines whose address is a loopback address.
fn filter_loopback_nameservers(content: &str) -> String {
    let mut out = String::new();
    for line in content.lines() {
        let mut words = line.split_whitespace();
        let loopback = words.next() == Some("nameserver")
            && words
                .next()
                .map(|a| a.split('%').next().unwrap_or(a))
                .and_then(|a| a.parse::<IpAddr>().ok())
                .is_some_and(|a| a.is_loopback());
        if !loopback {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// Replaced atomically, not synced: the files are written afresh for every task.
fn write(path: &Path, content: &str) -> Result<(), FilesError> {
    fsutil::write_volatile(path, content.as_bytes(), 0o644).map_err(|source| FilesError::Io {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_maps_the_container_ip_and_extras() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("hosts");
        let extra = [("db".to_string(), "10.0.0.9".parse().unwrap())];
        write_hosts(&p, "web", Some("10.89.0.2".parse().unwrap()), &extra).unwrap();
        let s = std::fs::read_to_string(&p).unwrap();
        assert!(s.starts_with("127.0.0.1\tlocalhost\n::1\tlocalhost"), "{s}");
        assert!(s.contains("10.89.0.2\tweb\n"), "{s}");
        assert!(s.ends_with("10.0.0.9\tdb\n"), "{s}");
        write_hosts(&p, "solo", None, &[]).unwrap();
        let s = std::fs::read_to_string(&p).unwrap();
        assert!(s.starts_with("127.0.0.1\tlocalhost solo\n"), "{s}");
        assert!(write_hosts(&p, "bad name", None, &[]).is_err());
        assert!(write_hosts(&p, "-x", None, &[]).is_err());
    }

    #[test]
    fn hostname_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("hostname");
        write_hostname(&p, "a.b-c").unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "a.b-c\n");
        assert!(write_hostname(&p, "").is_err());
        assert!(write_hostname(&p, &"x".repeat(64)).is_err());
    }

    #[test]
    fn resolv_conf_sources() {
        let dir = tempfile::tempdir().unwrap();
        let host = dir.path().join("host-resolv");
        let out = dir.path().join("resolv.conf");
        std::fs::write(
            &host,
            "search lan\nnameserver 127.0.0.53\nnameserver 10.1.1.1\nnameserver ::1\noptions edns0\n",
        )
        .unwrap();
        write_resolv_conf(&out, None, &host, false).unwrap();
        assert_eq!(
            std::fs::read_to_string(&out).unwrap(),
            "search lan\nnameserver 10.1.1.1\noptions edns0\n"
        );
        write_resolv_conf(&out, None, &host, true).unwrap();
        assert!(std::fs::read_to_string(&out)
            .unwrap()
            .contains("127.0.0.53"));

        std::fs::write(&host, "nameserver 127.0.0.53\n").unwrap();
        write_resolv_conf(&out, None, &host, false).unwrap();
        assert_eq!(
            std::fs::read_to_string(&out).unwrap(),
            "nameserver 127.0.0.53\n"
        );

        let dns = Dns {
            nameservers: vec!["10.9.9.9".into()],
            domain: Some("d".into()),
            search: vec!["a".into(), "b".into()],
            options: vec!["ndots:2".into()],
        };
        write_resolv_conf(&out, Some(&dns), &host, false).unwrap();
        assert_eq!(
            std::fs::read_to_string(&out).unwrap(),
            "domain d\nsearch a b\nnameserver 10.9.9.9\noptions ndots:2\n"
        );
        // DNS settings without a name server fall back to the host's file.
        write_resolv_conf(&out, Some(&Dns::default()), &dir.path().join("none"), false).unwrap();
        assert_eq!(std::fs::read_to_string(&out).unwrap(), "");
    }
}
