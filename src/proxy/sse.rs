//! Splits a server-sent-event byte stream into events as bytes arrive, whatever the
//! chunking of the transport.

use bytes::{Bytes, BytesMut};
use memchr::memmem;

#[derive(Default)]
pub struct SseSplitter {
    buffer: BytesMut,
}

impl SseSplitter {
    /// Adds bytes; returns the events they complete, each with its terminating blank line.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<Bytes> {
        self.buffer.extend_from_slice(chunk);
        let mut events = Vec::new();
        while let Some(end) = event_end(&self.buffer) {
            events.push(self.buffer.split_to(end).freeze());
        }
        events
    }

    /// Bytes of an event that has not ended yet.
    #[cfg(test)]
    pub fn remainder(&self) -> &[u8] {
        &self.buffer
    }
}

/// The end (exclusive) of the first complete event: the first blank line.
fn event_end(buf: &[u8]) -> Option<usize> {
    let lf = memmem::find(buf, b"\n\n").map(|i| i + 2);
    let crlf = memmem::find(buf, b"\r\n\r\n").map(|i| i + 4);
    match (lf, crlf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// The payload of the event's `data:` lines (joined by newlines, as SSE specifies).
pub fn data_of(event: &[u8]) -> Option<Vec<u8>> {
    let mut data: Option<Vec<u8>> = None;
    for line in event.split(|b| *b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if let Some(rest) = line.strip_prefix(b"data:") {
            let rest = rest.strip_prefix(b" ").unwrap_or(rest);
            let out = data.get_or_insert_with(Vec::new);
            if !out.is_empty() {
                out.push(b'\n');
            }
            out.extend_from_slice(rest);
        }
    }
    data
}

#[cfg(test)]
mod proptests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_across_arbitrary_chunking() {
        let stream = b"data: {\"a\":1}\n\ndata: {\"b\":2}\r\n\r\ndata: [DONE]\n\n";
        for cut in 1..stream.len() {
            let mut s = SseSplitter::default();
            let mut events = s.push(&stream[..cut]);
            events.extend(s.push(&stream[cut..]));
            assert_eq!(events.len(), 3, "cut at {cut}");
            assert_eq!(events.concat(), stream.to_vec());
            assert!(s.remainder().is_empty());
        }
    }

    #[test]
    fn data_lines() {
        assert_eq!(
            data_of(b"event: x\ndata: {\"a\":1}\n\n").unwrap(),
            b"{\"a\":1}"
        );
        assert_eq!(data_of(b"data:a\r\ndata: b\r\n\r\n").unwrap(), b"a\nb");
        assert_eq!(data_of(b": comment\n\n"), None);
    }
}
