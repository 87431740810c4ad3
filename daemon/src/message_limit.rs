//! Requests over the gRPC decoding limit (tonic's default, 4 MiB per message) are refused from
//! their length prefix, before the body is read. tonic answers them OUT_OF_RANGE; the gRPC
//! status code table asks for RESOURCE_EXHAUSTED ("a client sent a message larger than the
//! server's limit"), which is what grpc-go and containerd answer. This layer rewrites that one
//! answer (a trailers-only response carrying tonic's message) and leaves everything else alone.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tonic::codegen::http;
use tonic::Code;

/// The start of tonic's message for an oversized request, percent-encoded as in the header.
const TOO_LARGE: &[u8] = b"Error,%20decoded%20message%20length%20too%20large";

/// Wraps every service of the server.
#[derive(Debug, Clone, Copy, Default)]
pub struct TooLargeLayer;

impl<S> tower::Layer<S> for TooLargeLayer {
    type Service = TooLarge<S>;

    fn layer(&self, inner: S) -> TooLarge<S> {
        TooLarge(inner)
    }
}

#[derive(Debug, Clone)]
pub struct TooLarge<S>(S);

impl<S, Req, B> tower::Service<Req> for TooLarge<S>
where
    S: tower::Service<Req, Response = http::Response<B>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    B: Send + 'static,
{
    type Response = http::Response<B>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<http::Response<B>, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        let fut = self.0.call(req);
        Box::pin(async move { fut.await.map(resource_exhausted) })
    }
}

/// OUT_OF_RANGE with tonic's "message too large" text becomes RESOURCE_EXHAUSTED.
fn resource_exhausted<B>(mut resp: http::Response<B>) -> http::Response<B> {
    let headers = resp.headers_mut();
    let out_of_range = headers
        .get("grpc-status")
        .is_some_and(|v| v.as_bytes() == (Code::OutOfRange as i32).to_string().as_bytes());
    let too_large = headers
        .get("grpc-message")
        .is_some_and(|v| v.as_bytes().starts_with(TOO_LARGE));
    if out_of_range && too_large {
        headers.insert(
            "grpc-status",
            http::HeaderValue::from(Code::ResourceExhausted as i32),
        );
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status_of(status: tonic::Status) -> (Code, String) {
        let resp = resource_exhausted(status.into_http::<()>());
        let back = tonic::Status::from_header_map(resp.headers()).expect("a status");
        (back.code(), back.message().to_string())
    }

    #[test]
    fn only_tonics_too_large_answer_is_rewritten() {
        let msg = "Error, decoded message length too large: found 104857612 bytes, the limit is: \
                   4194304 bytes";
        assert_eq!(
            status_of(tonic::Status::out_of_range(msg)),
            (Code::ResourceExhausted, msg.to_string())
        );
        assert_eq!(
            status_of(tonic::Status::out_of_range("offset past the end")).0,
            Code::OutOfRange
        );
        assert_eq!(
            status_of(tonic::Status::invalid_argument(msg)).0,
            Code::InvalidArgument
        );
    }
}
