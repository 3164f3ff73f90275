//! Request and response bodies.
//!
//! Bodies stream through the gateway unless a phase must read them. `GuardedBody` wraps a
//! partner's request body on its way upstream: it enforces the size limit as bytes arrive
//! (a missing or lying Content-Length cannot get around it) and fails a client that stalls
//! between chunks, and it records which of the two happened so the pipeline can answer
//! 413 or 408 instead of blaming the upstream.

pub mod json;
pub mod masking;
pub mod projection;
pub mod validate;

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use http_body_util::{combinators::UnsyncBoxBody, BodyExt, Empty, Full};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::{Instant, Sleep};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The body type used on both sides of the gateway.
pub type Body = UnsyncBoxBody<Bytes, BoxError>;

/// A complete body from bytes.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).map_err(|never| match never {}).boxed_unsync()
}

/// An empty body.
pub fn empty() -> Body {
    Empty::new().map_err(|never| match never {}).boxed_unsync()
}

/// Why a guarded body stopped early. Each is the partner's doing, not the upstream's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFault {
    TooLarge,
    TooSlow,
    /// The client sent a malformed body (bad chunking) or went away mid-body.
    Broken,
}

/// Shared record of what happened to a guarded body, read after the upstream call fails.
#[derive(Debug, Default, Clone)]
pub struct BodyVerdict(Arc<AtomicU8>);

impl BodyVerdict {
    fn set(&self, fault: BodyFault) {
        let code = match fault {
            BodyFault::TooLarge => 1,
            BodyFault::TooSlow => 2,
            BodyFault::Broken => 3,
        };
        self.0.store(code, Ordering::Relaxed);
    }

    pub fn fault(&self) -> Option<BodyFault> {
        match self.0.load(Ordering::Relaxed) {
            1 => Some(BodyFault::TooLarge),
            2 => Some(BodyFault::TooSlow),
            3 => Some(BodyFault::Broken),
            _ => None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("request body {0}")]
struct GuardError(&'static str);

/// A request body with a size limit and an idle timeout between chunks.
pub struct GuardedBody<B> {
    inner: B,
    seen: u64,
    limit: u64,
    idle: Duration,
    sleep: Pin<Box<Sleep>>,
    verdict: BodyVerdict,
}

impl<B> GuardedBody<B> {
    pub fn new(inner: B, limit: u64, idle: Duration, verdict: BodyVerdict) -> Self {
        GuardedBody {
            inner,
            seen: 0,
            limit,
            idle,
            sleep: Box::pin(tokio::time::sleep(idle)),
            verdict,
        }
    }
}

impl<B> HttpBody for GuardedBody<B>
where
    B: HttpBody<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.seen += data.len() as u64;
                    if this.seen > this.limit {
                        this.verdict.set(BodyFault::TooLarge);
                        return Poll::Ready(Some(Err(Box::new(GuardError("exceeds the size limit")))));
                    }
                }
                let deadline = Instant::now() + this.idle;
                this.sleep.as_mut().reset(deadline);
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                this.verdict.set(BodyFault::Broken);
                Poll::Ready(Some(Err(e.into())))
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => {
                if this.sleep.as_mut().poll(cx).is_ready() {
                    this.verdict.set(BodyFault::TooSlow);
                    return Poll::Ready(Some(Err(Box::new(GuardError("stalled")))));
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The largest upstream answer read whole (legacy decoding, projection, a revenue amount in
/// the response); a larger one is refused rather than passed on unchecked.
pub const MAX_ANSWER_BYTES: u64 = 8 * 1024 * 1024;

/// Reads an upstream answer's body whole for a phase that must see all of it: at most
/// `MAX_ANSWER_BYTES`, pausing no longer than `idle` between chunks. A body that arrives in
/// one chunk (most do) is returned as it is, not copied. (`read_all` serves request
/// bodies; over a boxed body its generic bounds defeat the serving future's `Send` proof.)
pub async fn read_answer(body: Body, idle: Duration) -> Result<Bytes, BodyFault> {
    read_answer_within(body, MAX_ANSWER_BYTES, idle).await
}

/// `read_answer` with another size limit (an idempotent answer is stored, and stored ones
/// are kept smaller).
pub async fn read_answer_within(mut body: Body, limit: u64, idle: Duration) -> Result<Bytes, BodyFault> {
    let (mut single, mut joined, mut total) = (None::<Bytes>, Vec::new(), 0u64);
    loop {
        // The timer only starts when a chunk is not already there.
        let frame = match tokio::time::timeout(idle, body.frame()).await {
            Err(_) => return Err(BodyFault::TooSlow),
            Ok(None) => break,
            Ok(Some(Err(_))) => return Err(BodyFault::Broken),
            Ok(Some(Ok(frame))) => frame,
        };
        let Ok(data) = frame.into_data() else { continue };
        total += data.len() as u64;
        if total > limit {
            return Err(BodyFault::TooLarge);
        }
        if single.is_none() && joined.is_empty() {
            single = Some(data);
        } else {
            if let Some(first) = single.take() {
                joined.extend_from_slice(&first);
            }
            joined.extend_from_slice(&data);
        }
    }
    Ok(single.unwrap_or_else(|| Bytes::from(joined)))
}

/// Reads a whole body under the size limit and idle timeout, for phases that must see all
/// of it (validation, transformation).
pub async fn read_all<B>(body: B, limit: u64, idle: Duration) -> Result<Bytes, BodyFault>
where
    B: HttpBody<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    let verdict = BodyVerdict::default();
    let guarded = GuardedBody::new(body, limit, idle, verdict.clone());
    match guarded.collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(_) => Err(verdict.fault().unwrap_or(BodyFault::Broken)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;

    /// Yields its chunks, then either ends or (if `stall`) never yields again.
    struct Chunks {
        parts: VecDeque<&'static [u8]>,
        stall: bool,
    }

    impl HttpBody for Chunks {
        type Data = Bytes;
        type Error = std::convert::Infallible;
        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            match self.parts.pop_front() {
                Some(p) => Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(p))))),
                None if self.stall => Poll::Pending,
                None => Poll::Ready(None),
            }
        }
    }

    fn chunks(parts: &[&'static [u8]], stall: bool) -> Chunks {
        Chunks {
            parts: parts.iter().copied().collect(),
            stall,
        }
    }

    #[tokio::test]
    async fn passes_bodies_within_the_limit() {
        let verdict = BodyVerdict::default();
        let body = GuardedBody::new(
            chunks(&[b"abc", b"def"], false),
            6,
            Duration::from_secs(5),
            verdict.clone(),
        );
        let bytes = body.collect().await.unwrap().to_bytes();
        assert_eq!(&bytes[..], b"abcdef");
        assert_eq!(verdict.fault(), None);
    }

    #[tokio::test]
    async fn stops_at_the_limit_and_says_why() {
        let verdict = BodyVerdict::default();
        let body = GuardedBody::new(
            chunks(&[b"abc", b"defg"], false),
            6,
            Duration::from_secs(5),
            verdict.clone(),
        );
        assert!(body.collect().await.is_err());
        assert_eq!(verdict.fault(), Some(BodyFault::TooLarge));
    }

    fn boxed(body: Chunks) -> Body {
        body.map_err(|never| match never {}).boxed_unsync()
    }

    #[tokio::test(start_paused = true)]
    async fn answers_are_read_whole_one_chunk_in_place_and_within_bounds() {
        static ONE: &[u8] = b"{\"a\":1}";
        let one = read_answer(boxed(chunks(&[ONE], false)), Duration::from_secs(2)).await;
        assert_eq!(
            one.as_deref().map(<[u8]>::as_ptr),
            Ok(ONE.as_ptr()),
            "one chunk is not copied"
        );
        let joined = read_answer(boxed(chunks(&[b"ab", b"", b"cd"], false)), Duration::from_secs(2)).await;
        assert_eq!(joined.as_deref(), Ok(&b"abcd"[..]));

        let stalled = read_answer(boxed(chunks(&[b"ab"], true)), Duration::from_secs(2)).await;
        assert_eq!(stalled, Err(BodyFault::TooSlow));

        let half: &'static [u8] = Box::leak(vec![b' '; (MAX_ANSWER_BYTES / 2) as usize].into_boxed_slice());
        let at_limit = read_answer(boxed(chunks(&[half, half], false)), Duration::from_secs(2)).await;
        assert_eq!(at_limit.map(|b| b.len() as u64), Ok(MAX_ANSWER_BYTES));
        let over = read_answer(boxed(chunks(&[half, half, b"x"], false)), Duration::from_secs(2)).await;
        assert_eq!(over, Err(BodyFault::TooLarge));
    }

    #[tokio::test(start_paused = true)]
    async fn fails_a_stalled_client() {
        let verdict = BodyVerdict::default();
        let body = GuardedBody::new(chunks(&[b"abc"], true), 100, Duration::from_secs(2), verdict.clone());
        assert!(body.collect().await.is_err());
        assert_eq!(verdict.fault(), Some(BodyFault::TooSlow));
    }
}
