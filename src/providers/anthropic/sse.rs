//! Reading one server-sent event. Anthropic names every event (`event: message_start`) and
//! repeats the name as the payload's `type`.

use std::borrow::Cow;

/// One event's fields. `data` is `None` when the event has no `data:` line (a comment or a
/// keep-alive).
#[derive(Debug, PartialEq, Eq)]
pub struct SseEvent<'a> {
    pub event: Option<&'a str>,
    pub data: Option<Cow<'a, [u8]>>,
}

/// Parses the raw bytes of one event (its lines, with or without the terminating blank line).
/// Several `data:` lines are joined with `\n`, as the SSE specification says; a single one is
/// borrowed.
pub fn parse_event(raw: &[u8]) -> SseEvent<'_> {
    let mut event = None;
    let mut data: Option<Cow<'_, [u8]>> = None;
    for line in raw.split(|b| *b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if let Some(value) = field(line, b"event:") {
            event = std::str::from_utf8(value).ok();
        } else if let Some(value) = field(line, b"data:") {
            data = Some(match data {
                None => Cow::Borrowed(value),
                Some(previous) => {
                    let mut joined = previous.into_owned();
                    joined.push(b'\n');
                    joined.extend_from_slice(value);
                    Cow::Owned(joined)
                }
            });
        }
    }
    SseEvent { event, data }
}

/// The value of a `name:` line, without the one space that may follow the colon.
fn field<'a>(line: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    let value = line.strip_prefix(name)?;
    Some(value.strip_prefix(b" ").unwrap_or(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_event_with_data() {
        let e = parse_event(b"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n");
        assert_eq!(e.event, Some("message_stop"));
        assert_eq!(e.data.as_deref(), Some(&b"{\"type\":\"message_stop\"}"[..]));
        assert!(matches!(e.data, Some(Cow::Borrowed(_))));
    }

    #[test]
    fn crlf_multiline_and_comments() {
        let e = parse_event(b": keep-alive\r\nevent:ping\r\ndata:a\r\ndata: b\r\n\r\n");
        assert_eq!(e.event, Some("ping"));
        assert_eq!(e.data.as_deref(), Some(&b"a\nb"[..]));
        let e = parse_event(b": comment\n\n");
        assert_eq!(
            e,
            SseEvent {
                event: None,
                data: None
            }
        );
    }
}
