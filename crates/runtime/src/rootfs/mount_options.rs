//! fstab-style mount options of a spec mount, split into mount(2) flags, propagation changes,
//! recursive mount attributes (mount_setattr) and the filesystem's data string.

use nix::mount::MsFlags;

/// mount_setattr(2) attribute bits (linux/mount.h).
pub(super) mod attr {
    pub const RDONLY: u64 = 0x0000_0001;
    pub const NOSUID: u64 = 0x0000_0002;
    pub const NODEV: u64 = 0x0000_0004;
    pub const NOEXEC: u64 = 0x0000_0008;
    /// The mask of the three atime modes (relatime is 0).
    pub const ATIME_MASK: u64 = 0x0000_0070;
    pub const RELATIME: u64 = 0x0000_0000;
    pub const NOATIME: u64 = 0x0000_0010;
    pub const STRICTATIME: u64 = 0x0000_0020;
    pub const NODIRATIME: u64 = 0x0000_0080;
    pub const NOSYMFOLLOW: u64 = 0x0020_0000;
}

/// What one option does.
#[derive(Clone, Copy)]
enum Effect {
    /// Sets mount(2) flags.
    Set(MsFlags),
    /// Clears mount(2) flags (e.g. `rw`, `suid`).
    Clear(MsFlags),
    /// A propagation change applied after the mount.
    Propagation(MsFlags),
    /// Sets recursive attributes with mount_setattr (`rro`, `rnosuid`, ...).
    AttrSet(u64),
    /// Clears recursive attributes (`rrw`, `rsuid`, ...).
    AttrClear(u64),
    /// Changes the recursive atime mode (the clear mask is ATIME_MASK).
    AttrAtime(u64),
    /// Accepted and ignored (`tmpcopyup`, `defaults`).
    Ignore,
}

const fn flags(bits: libc::c_ulong) -> MsFlags {
    MsFlags::from_bits_truncate(bits)
}

/// The option table (the same names runc accepts).
const TABLE: &[(&str, Effect)] = &[
    ("async", Effect::Clear(MsFlags::MS_SYNCHRONOUS)),
    ("atime", Effect::Clear(MsFlags::MS_NOATIME)),
    ("bind", Effect::Set(MsFlags::MS_BIND)),
    ("defaults", Effect::Ignore),
    ("dev", Effect::Clear(MsFlags::MS_NODEV)),
    ("diratime", Effect::Clear(MsFlags::MS_NODIRATIME)),
    ("dirsync", Effect::Set(MsFlags::MS_DIRSYNC)),
    ("exec", Effect::Clear(MsFlags::MS_NOEXEC)),
    ("iversion", Effect::Set(MsFlags::MS_I_VERSION)),
    ("lazytime", Effect::Set(MsFlags::MS_LAZYTIME)),
    ("loud", Effect::Clear(MsFlags::MS_SILENT)),
    ("mand", Effect::Set(MsFlags::MS_MANDLOCK)),
    ("noatime", Effect::Set(MsFlags::MS_NOATIME)),
    ("nodev", Effect::Set(MsFlags::MS_NODEV)),
    ("nodiratime", Effect::Set(MsFlags::MS_NODIRATIME)),
    ("noexec", Effect::Set(MsFlags::MS_NOEXEC)),
    ("noiversion", Effect::Clear(MsFlags::MS_I_VERSION)),
    ("nolazytime", Effect::Clear(MsFlags::MS_LAZYTIME)),
    ("nomand", Effect::Clear(MsFlags::MS_MANDLOCK)),
    ("norelatime", Effect::Clear(MsFlags::MS_RELATIME)),
    ("nostrictatime", Effect::Clear(MsFlags::MS_STRICTATIME)),
    ("nosuid", Effect::Set(MsFlags::MS_NOSUID)),
    ("rbind", Effect::Set(flags(libc::MS_BIND | libc::MS_REC))),
    ("relatime", Effect::Set(MsFlags::MS_RELATIME)),
    ("remount", Effect::Set(MsFlags::MS_REMOUNT)),
    ("ro", Effect::Set(MsFlags::MS_RDONLY)),
    ("rw", Effect::Clear(MsFlags::MS_RDONLY)),
    ("silent", Effect::Set(MsFlags::MS_SILENT)),
    ("strictatime", Effect::Set(MsFlags::MS_STRICTATIME)),
    ("suid", Effect::Clear(MsFlags::MS_NOSUID)),
    ("sync", Effect::Set(MsFlags::MS_SYNCHRONOUS)),
    ("private", Effect::Propagation(MsFlags::MS_PRIVATE)),
    (
        "rprivate",
        Effect::Propagation(flags(libc::MS_PRIVATE | libc::MS_REC)),
    ),
    ("shared", Effect::Propagation(MsFlags::MS_SHARED)),
    (
        "rshared",
        Effect::Propagation(flags(libc::MS_SHARED | libc::MS_REC)),
    ),
    ("slave", Effect::Propagation(MsFlags::MS_SLAVE)),
    (
        "rslave",
        Effect::Propagation(flags(libc::MS_SLAVE | libc::MS_REC)),
    ),
    ("unbindable", Effect::Propagation(MsFlags::MS_UNBINDABLE)),
    (
        "runbindable",
        Effect::Propagation(flags(libc::MS_UNBINDABLE | libc::MS_REC)),
    ),
    ("rro", Effect::AttrSet(attr::RDONLY)),
    ("rrw", Effect::AttrClear(attr::RDONLY)),
    ("rnosuid", Effect::AttrSet(attr::NOSUID)),
    ("rsuid", Effect::AttrClear(attr::NOSUID)),
    ("rnodev", Effect::AttrSet(attr::NODEV)),
    ("rdev", Effect::AttrClear(attr::NODEV)),
    ("rnoexec", Effect::AttrSet(attr::NOEXEC)),
    ("rexec", Effect::AttrClear(attr::NOEXEC)),
    ("rnodiratime", Effect::AttrSet(attr::NODIRATIME)),
    ("rdiratime", Effect::AttrClear(attr::NODIRATIME)),
    ("rrelatime", Effect::AttrAtime(attr::RELATIME)),
    ("rnorelatime", Effect::AttrClear(attr::ATIME_MASK)),
    ("rnoatime", Effect::AttrAtime(attr::NOATIME)),
    ("ratime", Effect::AttrClear(attr::NOATIME)),
    ("rstrictatime", Effect::AttrAtime(attr::STRICTATIME)),
    ("rnostrictatime", Effect::AttrClear(attr::STRICTATIME)),
    ("rnosymfollow", Effect::AttrSet(attr::NOSYMFOLLOW)),
    ("rsymfollow", Effect::AttrClear(attr::NOSYMFOLLOW)),
    ("tmpcopyup", Effect::Ignore),
];

/// A spec mount's options, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct MountOptions {
    /// mount(2) flags (MS_BIND, MS_RDONLY, ...), without propagation flags.
    pub flags: MsFlags,
    /// Propagation changes, applied in order after the mount.
    pub propagation: Vec<MsFlags>,
    /// Recursive attributes to set with mount_setattr.
    pub attr_set: u64,
    /// Recursive attributes to clear with mount_setattr.
    pub attr_clr: u64,
    /// Options the kernel's filesystem parses (`mode=755`, `size=64k`, ...), comma-joined.
    pub data: String,
}

impl Default for MountOptions {
    fn default() -> Self {
        MountOptions {
            flags: MsFlags::empty(),
            propagation: Vec::new(),
            attr_set: 0,
            attr_clr: 0,
            data: String::new(),
        }
    }
}

impl MountOptions {
    /// Parses `options` with the runc table; unknown options go to the data string.
    pub fn parse(options: &[String]) -> MountOptions {
        let mut parsed = MountOptions::default();
        for option in options {
            match TABLE.iter().find(|(name, _)| name == option) {
                Some((_, effect)) => parsed.apply(*effect),
                None => {
                    if !parsed.data.is_empty() {
                        parsed.data.push(',');
                    }
                    parsed.data.push_str(option);
                }
            }
        }
        parsed
    }

    fn apply(&mut self, effect: Effect) {
        match effect {
            Effect::Set(f) => self.flags.insert(f),
            Effect::Clear(f) => self.flags.remove(f),
            Effect::Propagation(f) => self.propagation.push(f),
            Effect::AttrSet(a) => {
                self.attr_set |= a;
                self.attr_clr &= !a;
            }
            Effect::AttrClear(a) => {
                self.attr_clr |= a;
                self.attr_set &= !a;
            }
            Effect::AttrAtime(a) => {
                self.attr_clr |= attr::ATIME_MASK;
                self.attr_set = (self.attr_set & !attr::ATIME_MASK) | a;
            }
            Effect::Ignore => {}
        }
    }

    /// A bind mount (`bind` or `rbind`).
    pub fn is_bind(&self) -> bool {
        self.flags.contains(MsFlags::MS_BIND)
    }

    /// Flags that need a `MS_REMOUNT|MS_BIND` after a bind mount to take effect.
    pub fn bind_remount_flags(&self) -> MsFlags {
        self.flags - (MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_REMOUNT)
    }

    /// Whether recursive attributes must be applied with mount_setattr.
    pub fn has_attrs(&self) -> bool {
        self.attr_set != 0 || self.attr_clr != 0
    }
}

/// Parses a `rootfsPropagation` value ("shared", "rslave", ...) into its mount(2) flags.
pub(super) fn parse_propagation(value: &str) -> Option<MsFlags> {
    TABLE.iter().find_map(|(name, effect)| match effect {
        Effect::Propagation(f) if *name == value => Some(*f),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(list: &[&str]) -> MountOptions {
        let owned: Vec<String> = list.iter().map(|s| s.to_string()).collect();
        MountOptions::parse(&owned)
    }

    #[test]
    fn flags_data_and_propagation_are_separated() {
        let o = opts(&[
            "rbind",
            "ro",
            "nosuid",
            "mode=755",
            "rslave",
            "size=1k",
            "tmpcopyup",
        ]);
        assert_eq!(
            o.flags,
            MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_RDONLY | MsFlags::MS_NOSUID
        );
        assert_eq!(o.data, "mode=755,size=1k");
        assert_eq!(o.propagation, vec![MsFlags::MS_SLAVE | MsFlags::MS_REC]);
        assert!(o.is_bind());
        assert_eq!(
            o.bind_remount_flags(),
            MsFlags::MS_RDONLY | MsFlags::MS_NOSUID
        );
        assert!(!o.has_attrs());
    }

    #[test]
    fn later_options_override_earlier_ones() {
        let o = opts(&["ro", "nodev", "rw", "dev", "noexec"]);
        assert_eq!(o.flags, MsFlags::MS_NOEXEC);
        assert!(!o.is_bind());
    }

    #[test]
    fn recursive_attributes() {
        let o = opts(&["rro", "rnosuid", "rnoatime", "rsuid"]);
        assert_eq!(o.attr_set, attr::RDONLY | attr::NOATIME);
        assert_eq!(o.attr_clr, attr::NOSUID | attr::ATIME_MASK);
        assert!(o.has_attrs());
        assert!(o.flags.is_empty());
    }

    #[test]
    fn propagation_values() {
        assert_eq!(parse_propagation("shared"), Some(MsFlags::MS_SHARED));
        assert_eq!(
            parse_propagation("runbindable"),
            Some(MsFlags::MS_UNBINDABLE | MsFlags::MS_REC)
        );
        assert_eq!(parse_propagation("ro"), None);
        assert_eq!(parse_propagation("bogus"), None);
    }
}
