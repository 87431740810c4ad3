//! StopPodSandbox and RemovePodSandbox. Both succeed for a pod that does not exist (kubelet
//! retries them). Stop kills the pod's containers and the holding task, which tears the
//! network down; Remove also removes the containers, the pod's Berth container and records.

use std::sync::Arc;
use std::time::Duration;

use super::records::{self, NS};
use crate::daemon::Daemon;
use crate::error::ApiResult;
use crate::tasks;

pub async fn stop(d: &Arc<Daemon>, id: &str) -> ApiResult<()> {
    let Some(mut record) = records::find_sandbox(d, id)? else {
        return Ok(());
    };
    for c in records::containers(d)?
        .into_iter()
        .filter(|c| c.sandbox_id == record.id)
    {
        super::container_stop::stop(d, &c.id, Duration::ZERO).await?;
    }
    if let Some(c) = d.store.container(NS, &record.id)? {
        // Killed, deleted: the holding process has nothing to finish. The network goes with
        // the task.
        tasks::remove_task(d, NS, &c, true).await?;
    }
    if !record.stopped {
        record.stopped = true;
        records::put_sandbox(d, &record)?;
    }
    Ok(())
}

pub async fn remove(d: &Arc<Daemon>, id: &str) -> ApiResult<()> {
    let Some(record) = records::find_sandbox(d, id)? else {
        return Ok(());
    };
    for c in records::containers(d)?
        .into_iter()
        .filter(|c| c.sandbox_id == record.id)
    {
        super::container_stop::remove(d, &c.id).await?;
    }
    if let Some(c) = d.store.container(NS, &record.id)? {
        crate::services::containers::remove(d, NS, &c, true).await?;
    }
    records::delete_sandbox(d, &record.id)
}
