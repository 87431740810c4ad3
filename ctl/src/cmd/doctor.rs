//! doctor: orphans left by crashes, listed (`--dry-run`) or removed.

use berth_proto::v1::DoctorRequest;
use serde_json::json;

use crate::client::Clients;
use crate::output::{self, Format};

#[derive(clap::Args)]
pub struct DoctorArgs {
    /// List what would be removed; remove nothing.
    #[arg(long)]
    dry_run: bool,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
}

/// Exits 0 when nothing is left behind (everything found was removed), 1 otherwise.
pub async fn doctor(c: Clients, a: DoctorArgs) -> anyhow::Result<i32> {
    let orphans = c
        .maintenance
        .clone()
        .doctor(DoctorRequest { dry_run: a.dry_run })
        .await?
        .into_inner()
        .orphans;
    let left = orphans.iter().filter(|o| !o.removed).count();
    match a.format {
        Format::Json => {
            let docs: Vec<_> = orphans
                .iter()
                .map(|o| {
                    json!({"kind": o.kind, "namespace": o.namespace, "id": o.id, "path": o.path,
                        "detail": o.detail, "removed": o.removed, "error": o.error})
                })
                .collect();
            output::json(&docs)?;
        }
        Format::Table => {
            if orphans.is_empty() {
                println!("no orphans");
                return Ok(0);
            }
            let rows: Vec<Vec<String>> = orphans
                .iter()
                .map(|o| {
                    let state = if o.removed {
                        "removed".to_string()
                    } else if a.dry_run && o.error.is_empty() {
                        "found".to_string()
                    } else {
                        format!("kept: {}", o.error)
                    };
                    let owner = if o.namespace.is_empty() && o.id.is_empty() {
                        "-".to_string()
                    } else {
                        format!("{}/{}", o.namespace, o.id)
                    };
                    vec![
                        o.kind.clone(),
                        owner,
                        o.path.clone(),
                        o.detail.clone(),
                        state,
                    ]
                })
                .collect();
            output::table(&["KIND", "CONTAINER", "WHAT", "WHY", "STATE"], &rows);
        }
    }
    Ok(if left == 0 { 0 } else { 1 })
}
