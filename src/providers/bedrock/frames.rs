//! Reading Bedrock's streams: AWS event-stream frames (decoded by `aws-smithy-eventstream`),
//! split across the pieces of a response body as the network delivers them.

use aws_smithy_eventstream::frame::{DecodedFrame, MessageFrameDecoder};
use aws_smithy_types::event_stream::Message;
use bytes::{Buf, BytesMut};

/// Most bytes of frames not yet complete kept between pieces: a frame is at most 16 MiB.
const MAX_PENDING: usize = 16 * 1024 * 1024 + 1024;

#[derive(Debug, Default)]
pub struct FrameReader {
    pending: BytesMut,
    decoder: MessageFrameDecoder,
}

impl FrameReader {
    /// Takes a piece of the body: the frames it completes, and why the stream cannot be read
    /// further, if it cannot (an invalid or oversized frame).
    pub fn push(&mut self, bytes: &[u8]) -> (Vec<Message>, Option<String>) {
        self.pending.extend_from_slice(bytes);
        let mut frames = Vec::new();
        loop {
            match self.decoder.decode_frame(&mut self.pending) {
                Ok(DecodedFrame::Complete(message)) => frames.push(message),
                Ok(DecodedFrame::Incomplete) => break,
                Err(e) => {
                    return (
                        frames,
                        Some(format!("the upstream's event stream is not valid: {e}")),
                    );
                }
            }
        }
        if self.pending.len() > MAX_PENDING {
            self.pending.advance(self.pending.len());
            return (
                frames,
                Some("an event-stream frame is larger than 16 MiB".into()),
            );
        }
        (frames, None)
    }
}

/// A string header of a frame (`:event-type`, `:message-type`, `:exception-type`).
pub fn header(message: &Message, name: &str) -> Option<String> {
    message
        .headers()
        .iter()
        .find(|h| h.name().as_str() == name)
        .and_then(|h| h.value().as_string().ok())
        .map(|s| s.as_str().to_owned())
}
