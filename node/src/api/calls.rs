//! Marks each API call's connection busy ([`super::conn`] rule 1) until its answer has been
//! sent whole: a tower layer around the gRPC services.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use super::conn::{CallGuard, ConnInfo};

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// A tower layer that marks each call's connection busy until the call's answer has been
/// sent whole (its body ends or is dropped).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct TrackCalls;

impl<S> tower_layer::Layer<S> for TrackCalls {
    type Service = Tracked<S>;

    fn layer(&self, inner: S) -> Tracked<S> {
        Tracked { inner }
    }
}

/// A service whose calls keep their connection busy.
#[derive(Debug, Clone)]
pub(crate) struct Tracked<S> {
    inner: S,
}

impl<S, ReqBody, ResBody> tower_service::Service<http::Request<ReqBody>> for Tracked<S>
where
    S: tower_service::Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
    S::Future: Send + 'static,
    ResBody: http_body::Body,
{
    type Response = http::Response<GuardedBody<ResBody>>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<ReqBody>) -> Self::Future {
        let guard = request.extensions().get::<ConnInfo>().map(ConnInfo::begin);
        let call = self.inner.call(request);
        Box::pin(async move {
            let response = call.await?;
            Ok(response.map(|body| GuardedBody {
                body: Box::pin(body),
                _guard: guard,
            }))
        })
    }
}

/// A response body that keeps its connection busy until it ends or is dropped.
pub(crate) struct GuardedBody<B> {
    body: Pin<Box<B>>,
    _guard: Option<CallGuard>,
}

impl<B: http_body::Body> http_body::Body for GuardedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<B::Data>, B::Error>>> {
        self.body.as_mut().poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}
