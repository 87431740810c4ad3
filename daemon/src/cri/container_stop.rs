//! StopContainer (grace period, then SIGKILL) and RemoveContainer. Both succeed for a
//! container that does not exist. A stopped container's exit is kept in its record and its
//! task (shim, rootfs mount) is released; the writable layer stays until removal.

use std::sync::Arc;
use std::time::Duration;

use super::records::{self, ContainerRecord, NS};
use crate::daemon::Daemon;
use crate::error::{ApiError, ApiResult};
use crate::events::now_ns;
use crate::tasks;

pub async fn stop(d: &Arc<Daemon>, id: &str, timeout: Duration) -> ApiResult<()> {
    let Some(record) = records::find_container(d, id)? else {
        return Ok(());
    };
    let _lock = records::exit_lock(d, &record.id).await;
    // Read again under the lock: the exit reaper may have stored the exit.
    let Some(mut record) = records::container_exact(d, &record.id)? else {
        return Ok(());
    };
    let Some(c) = d.store.container(NS, &record.id)? else {
        return Ok(());
    };
    if d.bundles.path(NS, &c.id).exists() {
        match tasks::stop(d, NS, &c, timeout).await {
            Ok(exit) => {
                // Stored before the shim is deleted, so a crash in between keeps it.
                record_exit(&mut record, &exit);
                records::put_container(d, &record)?;
            }
            // The shim is gone: whatever it left is cleaned up below.
            Err(ApiError::NotFound(_) | ApiError::Unavailable(_)) => {}
            Err(e) => return Err(e),
        }
        if let Some(exit) = tasks::remove_task(d, NS, &c, true).await? {
            if !record.exited {
                record_exit(&mut record, &exit);
            }
        }
    }
    if !record.exited && record.started_at_ns != 0 {
        record.exited = true;
        record.exit_code = 255;
        record.finished_at_ns = now_ns();
        record.message = "the container's task was gone".into();
    }
    records::put_container(d, &record)
}

pub fn record_exit(record: &mut ContainerRecord, exit: &berth_proto::v1::ExitInfo) {
    record.exited = true;
    record.exit_code = exit.code;
    record.oom_killed = exit.oom_killed;
    record.finished_at_ns = if exit.exited_at_ns != 0 {
        exit.exited_at_ns
    } else {
        now_ns()
    };
}

pub async fn remove(d: &Arc<Daemon>, id: &str) -> ApiResult<()> {
    let Some(record) = records::find_container(d, id)? else {
        return Ok(());
    };
    let _lock = records::exit_lock(d, &record.id).await;
    if let Some(c) = d.store.container(NS, &record.id)? {
        crate::services::containers::remove(d, NS, &c, true).await?;
    }
    records::delete_container(d, &record.id)
}
