//! berth.v1.Events.

use berth_proto::v1::events_server::Events;
use berth_proto::v1::{Envelope, SubscribeRequest};
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::StreamExt;
use tonic::Request;

use super::{BoxStream, Reply};
use crate::daemon::{namespace, Shared};
use crate::events::matches;

pub struct EventsService(pub Shared);

#[tonic::async_trait]
impl Events for EventsService {
    type SubscribeStream = BoxStream<Envelope>;

    async fn subscribe(&self, req: Request<SubscribeRequest>) -> Reply<Self::SubscribeStream> {
        let ns = namespace(&self.0, &req)?;
        let mut filters = req.into_inner().filters;
        if !filters.iter().any(|f| f.starts_with("namespace=")) {
            filters.push(format!("namespace={ns}"));
        }
        let rx = self.0.bus.subscribe();
        let stream = BroadcastStream::new(rx)
            .filter_map(|r| r.ok())
            .filter(move |e| matches(e, &filters))
            .map(Ok);
        Ok(tonic::Response::new(Box::pin(stream)))
    }
}
