//! The streamed answer: a body stream that yields one SSE event per poll so hyper writes (and
//! flushes) each event as it is produced, with the configured pauses in between.

use std::io;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderValue, header};
use axum::response::Response;
use bytes::Bytes;
use futures_util::stream;

/// What to send, and when.
pub(crate) struct Script {
    pub events: Vec<Bytes>,
    /// Pause before every event after the first.
    pub chunk_delay: Duration,
    /// Extra pause after the first content event; zero when no content event is sent.
    pub hang: Duration,
    /// Index in `events` of the first content event (1 for chat completions, after the role
    /// chunk; 3 for messages, after `message_start`, `content_block_start` and `ping`).
    pub first_content: usize,
    /// End with an error instead of the last chunk, so the client sees a truncated body.
    pub abort: bool,
}

struct Cursor {
    script: std::vec::IntoIter<Bytes>,
    step: usize,
    chunk_delay: Duration,
    hang: Duration,
    hang_at: Option<usize>,
    abort: bool,
}

impl Cursor {
    fn pause_before(&self, step: usize) -> Duration {
        let mut pause = if step == 0 {
            Duration::ZERO
        } else {
            self.chunk_delay
        };
        if self.hang_at == Some(step) {
            pause += self.hang;
        }
        pause
    }
}

pub(crate) fn response(script: Script) -> Response {
    // The hang comes before the step after the first content event (an event or the abort).
    let hang_at = (!script.hang.is_zero()).then_some(script.first_content + 1);
    let cursor = Cursor {
        script: script.events.into_iter(),
        step: 0,
        chunk_delay: script.chunk_delay,
        hang: script.hang,
        hang_at,
        abort: script.abort,
    };
    let body = stream::unfold(cursor, |mut c| async move {
        let pause = c.pause_before(c.step);
        let next = c.script.next();
        if next.is_none() && !c.abort {
            return None;
        }
        c.step += 1;
        if !pause.is_zero() {
            tokio::time::sleep(pause).await;
        }
        match next {
            Some(event) => Some((Ok(event), c)),
            None => {
                c.abort = false;
                // Returning Pending once makes hyper flush the events it has buffered; an error
                // straight away would drop them with the connection.
                tokio::task::yield_now().await;
                Some((Err(io::Error::other("mock: cut_after")), c))
            }
        }
    });

    let mut response = Response::new(Body::from_stream(body));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}
