//! Request bodies that can be sent more than once.
//!
//! A retry sends the request again, body included, so the retry layer needs a
//! copy of the body made before the first attempt consumed it. [`ReplayBody`]
//! says how: bodies held in memory (`Full`, `Empty`, `String`) are cloned, and
//! a streaming body is wrapped in [`Buffered`], which records what it streams,
//! up to a cap, so that it can be streamed again. A body that cannot be
//! replayed is sent once and never retried; it never fails because of that.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes};
use http::Request;
use http_body::{Body, Frame, SizeHint};
use http_body_util::{Empty, Full};

use crate::error::BoxError;

/// A request body that may be sent again.
pub trait ReplayBody: Body + Sized {
    /// A copy of this body, unsent, for another attempt; `None` when it cannot
    /// be sent again.
    fn try_clone(&self) -> Option<Self>;
}

impl<D: Buf + Clone> ReplayBody for Full<D> {
    fn try_clone(&self) -> Option<Self> {
        Some(self.clone())
    }
}

impl<D: Buf> ReplayBody for Empty<D> {
    fn try_clone(&self) -> Option<Self> {
        Some(Empty::new())
    }
}

impl ReplayBody for String {
    fn try_clone(&self) -> Option<Self> {
        Some(self.clone())
    }
}

/// An unsent copy of a request, from which every retry is made.
///
/// Kept field by field: copying a request's head into a new `Request` would
/// first build and then drop a default head, on every call. The body is
/// `None` when it cannot be sent again; the head is still kept, for the
/// status requests of an assembled stack.
pub(crate) struct Template<B> {
    method: http::Method,
    uri: http::Uri,
    version: http::Version,
    headers: http::HeaderMap,
    extensions: http::Extensions,
    body: Option<B>,
}

impl<B: ReplayBody> Template<B> {
    /// A template of `request`.
    #[inline]
    pub(crate) fn of(request: &Request<B>) -> Template<B> {
        Template {
            body: request.body().try_clone(),
            method: request.method().clone(),
            uri: request.uri().clone(),
            version: request.version(),
            headers: request.headers().clone(),
            extensions: request.extensions().clone(),
        }
    }

    /// The request's URL.
    pub(crate) fn uri(&self) -> &http::Uri {
        &self.uri
    }

    /// Whether a copy can still be made.
    pub(crate) fn is_replayable(&self) -> bool {
        self.body.as_ref().and_then(ReplayBody::try_clone).is_some()
    }

    /// A copy of the request for another attempt.
    pub(crate) fn request(&self) -> Option<Request<B>> {
        let mut request = Request::new(self.body.as_ref()?.try_clone()?);
        *request.method_mut() = self.method.clone();
        *request.uri_mut() = self.uri.clone();
        *request.version_mut() = self.version;
        *request.headers_mut() = self.headers.clone();
        *request.extensions_mut() = self.extensions.clone();
        Some(request)
    }

    /// What status requests need of the request (its URL, headers and
    /// version): moved, not copied.
    pub(crate) fn into_head(self) -> (http::Uri, http::HeaderMap, http::Version) {
        (self.uri, self.headers, self.version)
    }
}

/// A streaming body that records what it streams, up to a cap, so that it can
/// be streamed again by a retry.
///
/// The first attempt streams the body as it comes, without waiting for all of
/// it. Every copy made with [`ReplayBody::try_clone`] replays the recorded
/// frames and then goes on reading the source where the recording stopped, so
/// a retry works even when the first attempt failed before it read the whole
/// body (or any of it). Once more than `max_bytes` have streamed, the
/// recording stops: the attempt in flight goes on, and `try_clone` answers
/// `None`, so the request is not retried. Wrap a body with
/// [`Policy::buffer_body`](crate::Policy::buffer_body) to take the cap from
/// `retry.buffer_max`.
///
/// ```
/// use http_body_util::Full;
/// use tower_rebound::retry::ReplayBody;
/// use tower_rebound::Policy;
///
/// let policy = Policy::preset("standard")?;
/// // Any body: a stream from a file or a socket, here bytes for brevity.
/// let body = policy.buffer_body(Full::new(bytes::Bytes::from_static(b"{\"rows\":[]}")));
/// // Before it streams, a copy can be made; past buffer_max it cannot.
/// assert!(body.try_clone().is_some());
/// # Ok::<_, tower_rebound::PolicyError>(())
/// ```
pub struct Buffered<B> {
    tee: Arc<Mutex<Tee<B>>>,
    /// The index of the next recorded frame to yield; `None` once this copy
    /// has read past the recording.
    position: Option<usize>,
}

struct Tee<B> {
    source: Pin<Box<B>>,
    recorded: Vec<Bytes>,
    recorded_len: usize,
    max_bytes: usize,
    complete: bool,
    overflowed: bool,
}

impl<B> Buffered<B> {
    /// Wraps `body`, recording up to `max_bytes` of it for replays.
    pub fn new(body: B, max_bytes: usize) -> Self {
        Buffered {
            tee: Arc::new(Mutex::new(Tee {
                source: Box::pin(body),
                recorded: Vec::new(),
                recorded_len: 0,
                max_bytes,
                complete: false,
                overflowed: false,
            })),
            position: Some(0),
        }
    }
}

impl<B: Default> Default for Buffered<B> {
    /// An empty body, as the poll layer sends to a status URL.
    fn default() -> Self {
        Buffered::new(B::default(), 0)
    }
}

impl<B> std::fmt::Debug for Buffered<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Buffered")
            .field("position", &self.position)
            .finish_non_exhaustive()
    }
}

/// The error of a replay that reached the end of the recording of a body that
/// was too large to record whole.
#[derive(Debug)]
pub struct NotReplayable;

impl std::fmt::Display for NotReplayable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the request body was larger than retry.buffer_max and cannot be replayed")
    }
}

impl std::error::Error for NotReplayable {}

impl<B> Body for Buffered<B>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        let mut tee = this
            .tee
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(position) = this.position {
            if let Some(frame) = tee.recorded.get(position) {
                this.position = Some(position + 1);
                return Poll::Ready(Some(Ok(Frame::data(frame.clone()))));
            }
            if tee.complete {
                return Poll::Ready(None);
            }
            if tee.overflowed {
                // Another copy read past the recording: what followed it is gone.
                return Poll::Ready(Some(Err(Box::new(NotReplayable))));
            }
        }
        let frame = match ready!(tee.source.as_mut().poll_frame(cx)) {
            None => {
                if this.position.is_some() {
                    tee.complete = true;
                }
                return Poll::Ready(None);
            }
            Some(Err(e)) => return Poll::Ready(Some(Err(e.into()))),
            Some(Ok(frame)) => frame,
        };
        let frame = match frame.into_data() {
            Ok(mut data) => {
                let data = data.copy_to_bytes(data.remaining());
                if let Some(position) = this.position {
                    if tee.recorded_len + data.len() <= tee.max_bytes {
                        tee.recorded_len += data.len();
                        tee.recorded.push(data.clone());
                        this.position = Some(position + 1);
                    } else {
                        tee.overflowed = true;
                        tee.recorded = Vec::new();
                        this.position = None;
                    }
                }
                Frame::data(data)
            }
            Err(frame) => match frame.into_trailers() {
                Ok(trailers) => Frame::trailers(trailers),
                Err(_) => return Poll::Ready(None),
            },
        };
        Poll::Ready(Some(Ok(frame)))
    }

    fn is_end_stream(&self) -> bool {
        let tee = self
            .tee
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match self.position {
            Some(position) => tee.complete && position >= tee.recorded.len(),
            None => tee.source.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        let tee = self
            .tee
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if tee.complete {
            let left: usize = match self.position {
                Some(position) => tee.recorded.iter().skip(position).map(Bytes::len).sum(),
                None => 0,
            };
            SizeHint::with_exact(left as u64)
        } else {
            SizeHint::new()
        }
    }
}

impl<B> ReplayBody for Buffered<B>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    fn try_clone(&self) -> Option<Self> {
        let tee = self
            .tee
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        (!tee.overflowed).then(|| Buffered {
            tee: Arc::clone(&self.tee),
            position: Some(0),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    /// A body that yields each part as a frame, one per poll.
    struct Chunks(std::collections::VecDeque<Bytes>);

    impl Body for Chunks {
        type Data = Bytes;
        type Error = std::convert::Infallible;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            Poll::Ready(self.0.pop_front().map(|b| Ok(Frame::data(b))))
        }
    }

    fn chunks(parts: &[&'static str]) -> Chunks {
        Chunks(
            parts
                .iter()
                .map(|p| Bytes::from_static(p.as_bytes()))
                .collect(),
        )
    }

    async fn text<B: Body<Data = Bytes>>(body: B) -> Result<String, B::Error> {
        let bytes = body.collect().await?.to_bytes();
        Ok(String::from_utf8(bytes.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn a_small_body_replays_whole() {
        let body = Buffered::new(chunks(&["ab", "cd", "e"]), 16);
        let copy = body.try_clone().unwrap();
        assert_eq!(text(body).await.unwrap(), "abcde");
        assert_eq!(text(copy.try_clone().unwrap()).await.unwrap(), "abcde");
        assert_eq!(text(copy).await.unwrap(), "abcde");
    }

    #[tokio::test]
    async fn a_copy_continues_where_a_failed_attempt_stopped() {
        let mut first = Buffered::new(chunks(&["ab", "cd", "ef"]), 16);
        let copy = first.try_clone().unwrap();
        // The first attempt reads one frame, then the connection fails.
        let frame = first.frame().await.unwrap().unwrap();
        assert_eq!(frame.into_data().unwrap(), "ab");
        drop(first);
        assert_eq!(text(copy).await.unwrap(), "abcdef");
    }

    #[tokio::test]
    async fn an_unsent_body_replays_from_the_source() {
        let body = Buffered::new(chunks(&["xyz"]), 16);
        let copy = body.try_clone().unwrap();
        drop(body);
        assert_eq!(text(copy).await.unwrap(), "xyz");
    }

    #[tokio::test]
    async fn a_body_over_the_cap_streams_once_and_is_not_replayable() {
        let body = Buffered::new(chunks(&["aaaa", "bbbb", "cccc"]), 6);
        let copy = body.try_clone().unwrap();
        assert_eq!(text(body).await.unwrap(), "aaaabbbbcccc");
        assert!(copy.try_clone().is_none());
        let error = text(copy).await.unwrap_err();
        assert!(error.is::<NotReplayable>(), "{error}");
    }

    #[test]
    fn in_memory_bodies_clone() {
        assert!(Full::new(Bytes::from_static(b"x")).try_clone().is_some());
        assert!(Empty::<Bytes>::new().try_clone().is_some());
        assert!(String::from("x").try_clone().is_some());
        let request = Request::post("http://a.example/x")
            .header("idempotency-key", "k")
            .body(Full::new(Bytes::from_static(b"body")))
            .unwrap();
        let copy = Template::of(&request).request().unwrap();
        assert_eq!(copy.method(), "POST");
        assert_eq!(copy.uri(), request.uri());
        assert_eq!(copy.headers(), request.headers());
    }
}
