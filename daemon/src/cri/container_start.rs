//! StartContainer: the task (bundle, rootfs mount, shim) is created here and started at once.

use std::sync::Arc;

use berth_proto::shim::v1 as shim;

use super::records::{self, NS};
use crate::daemon::Daemon;
use crate::error::{ApiError, ApiResult};
use crate::events::now_ns;
use crate::tasks;

pub async fn start(d: &Arc<Daemon>, id: &str) -> ApiResult<()> {
    let record = records::container(d, id)?;
    if record.started_at_ns != 0 {
        return Err(ApiError::FailedPrecondition(format!(
            "container {:?} was already started",
            record.id
        )));
    }
    let sandbox = records::sandbox(d, &record.sandbox_id)?;
    if sandbox.stopped {
        return Err(ApiError::FailedPrecondition(format!(
            "pod sandbox {:?} is stopped",
            sandbox.id
        )));
    }
    let c = d.store.find_container(NS, &record.id)?;
    if !record.log_path.is_empty() {
        if let Some(dir) = std::path::Path::new(&record.log_path).parent() {
            std::fs::create_dir_all(dir)
                .map_err(|e| ApiError::internal("creating the log directory", e))?;
        }
    }
    tasks::create(d, NS, &c).await?;
    // Before the call: a process that exits at once may report its exit (finished_at) before
    // the call returns, and started_at must not come after it.
    let started_at = now_ns();
    let started = async {
        let mut client = tasks::client(d, NS, &c.id).await?;
        client.start(shim::ProcessRequest::default()).await?;
        Ok::<(), ApiError>(())
    }
    .await;
    if let Err(e) = started {
        let _ = tasks::remove_task(d, NS, &c, true).await;
        return Err(e);
    }
    // Read again under the exit lock: the reaper may have stored the exit of a process that
    // ended meanwhile, and writing the record read above would lose it.
    let _lock = records::exit_lock(d, id).await;
    let mut record = records::container(d, id)?;
    record.started_at_ns = started_at;
    records::put_container(d, &record)?;
    Ok(())
}
