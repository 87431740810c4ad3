//! The device cgroup rules a container gets besides the spec's own: access to the devices every
//! container has (/dev/null, /dev/zero, ptys, ...) and to the devices the spec creates, appended
//! after the spec's rules like runc does, so a spec's "deny all" still lets the container work.

use oci_spec::runtime::{
    LinuxDevice, LinuxDeviceCgroup, LinuxDeviceCgroupBuilder, LinuxDeviceType, LinuxResources,
};

/// (major, minor) of the default character devices: null, zero, full, tty, random, urandom,
/// ptmx; plus every pty slave (136:*).
const DEFAULT_CHAR_DEVICES: [(i64, Option<i64>); 8] = [
    (1, Some(3)),
    (1, Some(5)),
    (1, Some(7)),
    (5, Some(0)),
    (1, Some(8)),
    (1, Some(9)),
    (5, Some(2)),
    (136, None),
];

/// `resources` with the default and spec-device allow rules appended.
pub(crate) fn with_container_devices(
    resources: &LinuxResources,
    spec_devices: &[LinuxDevice],
) -> LinuxResources {
    let mut rules: Vec<LinuxDeviceCgroup> = resources.devices().clone().unwrap_or_default();
    for (major, minor) in DEFAULT_CHAR_DEVICES {
        rules.push(allow(LinuxDeviceType::C, major, minor));
    }
    for d in spec_devices {
        rules.push(allow(d.typ(), d.major(), Some(d.minor())));
    }
    let mut out = resources.clone();
    out.set_devices(Some(rules));
    out
}

fn allow(typ: LinuxDeviceType, major: i64, minor: Option<i64>) -> LinuxDeviceCgroup {
    let b = LinuxDeviceCgroupBuilder::default()
        .allow(true)
        .typ(typ)
        .major(major)
        .access("rwm");
    let b = match minor {
        Some(m) => b.minor(m),
        None => b,
    };
    // All fields are set: the builder cannot fail.
    b.build().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_appended_after_the_spec_rules() {
        let deny_all = LinuxDeviceCgroupBuilder::default()
            .allow(false)
            .access("rwm")
            .build()
            .unwrap();
        let mut res = LinuxResources::default();
        res.set_devices(Some(vec![deny_all.clone()]));
        let out = with_container_devices(&res, &[]);
        let rules = out.devices().as_ref().unwrap();
        assert_eq!(rules[0], deny_all);
        assert_eq!(rules.len(), 1 + DEFAULT_CHAR_DEVICES.len());
        assert!(rules[1..].iter().all(|r| r.allow()));
        assert!(rules
            .iter()
            .any(|r| r.major() == Some(1) && r.minor() == Some(3)));
    }
}
