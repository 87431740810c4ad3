//! v1 `devices` controller: the device allowlist.

use std::path::Path;

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};

use crate::cgroups::{fs, CgroupError};

/// Denies every device, then writes each rule in order to `devices.allow` or `devices.deny`.
pub(super) fn apply(dir: &Path, rules: &[LinuxDeviceCgroup]) -> Result<(), CgroupError> {
    fs::write(dir, "devices.deny", "a")?;
    for rule in rules {
        let Some(line) = rule_line(rule) else {
            continue;
        };
        let file = if rule.allow() {
            "devices.allow"
        } else {
            "devices.deny"
        };
        fs::write(dir, file, &line)?;
    }
    Ok(())
}

/// `TYPE MAJOR:MINOR ACCESS`, e.g. `c 1:3 rwm`; `*` for a missing number, `rwm` for missing
/// access. FIFO rules have no v1 equivalent and give `None`.
fn rule_line(rule: &LinuxDeviceCgroup) -> Option<String> {
    let typ = match rule.typ().unwrap_or(LinuxDeviceType::A) {
        LinuxDeviceType::A => 'a',
        LinuxDeviceType::B => 'b',
        LinuxDeviceType::C | LinuxDeviceType::U => 'c',
        LinuxDeviceType::P => return None,
    };
    let num = |n: Option<i64>| {
        n.filter(|n| *n >= 0)
            .map_or("*".to_string(), |n| n.to_string())
    };
    let access = rule
        .access()
        .as_deref()
        .filter(|a| !a.is_empty())
        .unwrap_or("rwm");
    Some(format!(
        "{typ} {}:{} {access}",
        num(rule.major()),
        num(rule.minor())
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(json: &str) -> Vec<LinuxDeviceCgroup> {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn rule_lines() {
        let r = rules(
            r#"[{"allow":false,"access":"rwm"},
                {"allow":true,"type":"c","major":1,"minor":3,"access":"rw"},
                {"allow":true,"type":"b","major":8},
                {"allow":true,"type":"u","major":5,"minor":1,"access":""},
                {"allow":true,"type":"p"}]"#,
        );
        let lines: Vec<_> = r.iter().map(rule_line).collect();
        assert_eq!(
            lines,
            vec![
                Some("a *:* rwm".to_string()),
                Some("c 1:3 rw".to_string()),
                Some("b 8:* rwm".to_string()),
                Some("c 5:1 rwm".to_string()),
                None
            ]
        );
    }

    #[test]
    fn apply_denies_all_first() {
        // Regular files keep only the last write, so check each file's final rule.
        let d = crate::cgroups::test_support::fixture(&["devices.allow", "devices.deny"]);
        apply(
            d.path(),
            &rules(r#"[{"allow":true,"type":"c","major":1,"minor":5}]"#),
        )
        .unwrap();
        assert_eq!(crate::cgroups::test_support::read(&d, "devices.deny"), "a");
        assert_eq!(
            crate::cgroups::test_support::read(&d, "devices.allow"),
            "c 1:5 rwm"
        );
    }
}
