//! The gRPC services of berth.v1, one file each.

pub mod containers;
pub mod events;
pub mod images;
pub mod maintenance;
pub mod namespaces;
pub mod networks;
pub(crate) mod task_io;
pub mod tasks;
pub mod version;

use std::pin::Pin;

use tokio_stream::Stream;
use tonic::{Response, Status};

pub type Reply<T> = Result<Response<T>, Status>;
pub type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;
