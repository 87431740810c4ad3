//! The event bus: every service publishes here, Events.Subscribe streams from it.

use std::collections::HashMap;

use berth_proto::v1::Envelope;
use tokio::sync::broadcast;

#[derive(Clone)]
pub struct Bus {
    tx: broadcast::Sender<Envelope>,
}

impl Bus {
    pub fn new() -> Bus {
        Bus {
            tx: broadcast::channel(1024).0,
        }
    }

    pub fn publish(&self, ns: &str, topic: &str, id: &str, attributes: &[(&str, String)]) {
        let env = Envelope {
            timestamp_ns: now_ns(),
            namespace: ns.to_string(),
            topic: topic.to_string(),
            id: id.to_string(),
            attributes: attributes
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect::<HashMap<_, _>>(),
        };
        tracing::debug!(ns, topic, id, "event");
        let _ = self.tx.send(env);
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Envelope> {
        self.tx.subscribe()
    }
}

/// A subscriber's filters: `key=value` terms that must all match (type, topic, container/id,
/// namespace, or any attribute).
pub fn matches(env: &Envelope, filters: &[String]) -> bool {
    filters.iter().all(|f| {
        let (key, value) = f.split_once('=').unwrap_or((f.as_str(), ""));
        match key {
            "type" => env.topic.trim_start_matches('/').starts_with(value),
            "topic" => env.topic == value,
            "container" | "id" | "image" => env.id == value || env.id.starts_with(value),
            "namespace" => env.namespace == value,
            other => env.attributes.get(other).is_some_and(|v| v == value),
        }
    })
}

pub fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_match_type_topic_and_ids() {
        let env = Envelope {
            topic: "/tasks/exit".into(),
            id: "abc123".into(),
            namespace: "default".into(),
            ..Default::default()
        };
        assert!(matches(&env, &[]));
        assert!(matches(
            &env,
            &["type=tasks".into(), "container=abc".into()]
        ));
        assert!(!matches(&env, &["topic=/tasks/start".into()]));
        assert!(!matches(&env, &["type=images".into()]));
    }
}
