//! The state document `state` and `list --format json` print, shaped like runc's.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use berth_runtime::{Container, Runtime};
use serde::Serialize;

/// What `berth-oci state` prints (runc's field names).
#[derive(Debug, Serialize)]
pub struct StateDoc {
    #[serde(rename = "ociVersion")]
    pub oci_version: String,
    pub id: String,
    pub pid: i32,
    pub status: String,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    pub created: String,
    pub owner: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub annotations: Option<std::collections::HashMap<String, String>>,
}

impl StateDoc {
    pub fn of(runtime: &Runtime, container: &Container) -> Self {
        let oci = container.oci_state();
        let bundle = container.bundle().to_path_buf();
        let rootfs = container
            .spec()
            .ok()
            .and_then(|spec| spec.root().as_ref().map(|root| root.path().clone()))
            .map(|path| {
                if path.is_absolute() {
                    path
                } else {
                    bundle.join(path)
                }
            })
            .unwrap_or_default();
        let created = created_time(&runtime.root().join(container.id()));
        StateDoc {
            oci_version: oci.version().clone(),
            id: container.id().to_string(),
            pid: container.pid().unwrap_or(0),
            status: container.status().to_string(),
            bundle,
            rootfs,
            created,
            owner: String::new(),
            annotations: oci.annotations().clone(),
        }
    }
}

/// When the container's state directory was made, as RFC 3339 UTC.
fn created_time(state_dir: &Path) -> String {
    let time = std::fs::metadata(state_dir)
        .and_then(|meta| meta.created().or_else(|_| meta.modified()))
        .unwrap_or_else(|_| SystemTime::now());
    rfc3339(time)
}

/// Formats `time` as `YYYY-MM-DDThh:mm:ss.nnnnnnnnnZ`.
pub fn rfc3339(time: SystemTime) -> String {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:09}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60,
        since.subsec_nanos()
    )
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn formats_dates() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000000000Z");
        let t = UNIX_EPOCH + Duration::new(1_709_210_096, 5);
        assert_eq!(rfc3339(t), "2024-02-29T12:34:56.000000005Z");
    }
}
