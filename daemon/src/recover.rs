//! Start-up recovery: reconnect to every shim found in the state dir (in parallel, within one
//! time budget), resume relaying its events, report exits that happened while the daemon was
//! away, and clean up tasks whose container record or shim is gone.

use std::sync::Arc;
use std::time::Duration;

use berth_proto::shim::v1 as shim;

use crate::daemon::Daemon;
use crate::error::ApiError;

/// How long recovery may take in all before the daemon serves anyway.
const BUDGET: Duration = Duration::from_secs(5);

pub async fn run(d: &Arc<Daemon>) {
    let mut jobs = tokio::task::JoinSet::new();
    let tasks_dir = d.cfg.tasks_dir();
    for ns in std::fs::read_dir(&tasks_dir)
        .into_iter()
        .flatten()
        .flatten()
    {
        let ns_name = ns.file_name().to_string_lossy().into_owned();
        for t in std::fs::read_dir(ns.path()).into_iter().flatten().flatten() {
            let id = t.file_name().to_string_lossy().into_owned();
            if id.starts_with('.') {
                continue;
            }
            let (d, ns_name) = (d.clone(), ns_name.clone());
            jobs.spawn(async move { recover_one(&d, &ns_name, &id).await });
        }
    }
    let all = async { while jobs.join_next().await.is_some() {} };
    if tokio::time::timeout(BUDGET, all).await.is_err() {
        // The slow ones go on in the background (dropping the set would abort them).
        jobs.detach_all();
        tracing::warn!("task recovery did not finish within {BUDGET:?}; serving anyway");
    }
}

async fn recover_one(d: &Arc<Daemon>, ns: &str, id: &str) {
    let record = d.store.container(ns, id).ok().flatten();
    let bundle = d.bundles.path(ns, id);
    let Some(c) = record else {
        tracing::warn!(ns, id, "a task without a container record: removing it");
        let stub = berth_proto::v1::Container {
            id: id.to_string(),
            ..Default::default()
        };
        let _ = crate::tasks::remove_task(d, ns, &stub, true).await;
        return;
    };
    let auto_remove = c.options.as_ref().is_some_and(|o| o.auto_remove);
    let mut client = match d.shims.client(ns, id, &bundle).await {
        Ok(c) => c,
        // A shim speaking a protocol we do not: reported (ps, inspect, doctor), left running.
        Err(ApiError::FailedPrecondition(why)) => {
            tracing::warn!(ns, id, "{why}");
            return;
        }
        Err(e) => {
            tracing::warn!(ns, id, "the shim is gone ({e})");
            crate::exits::shim_gone(d, ns, id, auto_remove).await;
            return;
        }
    };
    let events = match client.events(shim::Empty {}).await {
        Ok(e) => e.into_inner(),
        Err(e) => {
            tracing::warn!(ns, id, "subscribing to the shim's events: {e}");
            return;
        }
    };
    // An exit while we were away: report it now (and honour --rm).
    let state = client.state(shim::ProcessRequest::default()).await;
    if let Err(s) = &state {
        if s.code() == tonic::Code::NotFound {
            // A shim without a container: berthd died between starting it and Create. The
            // task never existed; remove it (the shim is shut down, the record stays).
            tracing::warn!(
                ns,
                id,
                "a shim without a container: removing the half-made task"
            );
            let _ = crate::tasks::remove_task(d, ns, &c, true).await;
            return;
        }
    }
    // Relayed only for a real task (the stream is subscribed already, nothing is missed): the
    // end of a half-made task's shim must not read as a shim that died.
    crate::tasks::forward_events(
        d.clone(),
        ns.to_string(),
        id.to_string(),
        auto_remove,
        events,
    );
    if let Ok(st) = state {
        let st = st.into_inner();
        if st.status == shim::Status::Stopped as i32 {
            if let Some(exit) = st.exit.map(crate::tasks::exit_info) {
                // Recorded (and reported) already if it exited before berthd went down.
                let known = c
                    .last_exit
                    .is_some_and(|l| l.exited_at_ns == exit.exited_at_ns);
                if !known {
                    let (status, reason) = (crate::exits::EXITED, crate::exits::WHILE_DOWN);
                    crate::exits::record(d, ns, id, exit, status, reason);
                    d.bus.publish(
                        ns,
                        "/tasks/exit",
                        id,
                        &[
                            ("exit_code", exit.code.to_string()),
                            ("reason", reason.into()),
                        ],
                    );
                }
            }
            if auto_remove {
                let _ = crate::services::containers::remove(d, ns, &c, true).await;
            }
        }
    }
    tracing::info!(ns, id, "reconnected to the shim");
}
