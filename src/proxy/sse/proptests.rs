//! Property tests: the event splitter yields the same events however the transport chunks
//! the same bytes, and loses or adds nothing.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use proptest::prelude::*;

use super::{SseSplitter, data_of};
use crate::test_support::cases;

/// Bytes that look like an event stream often enough to matter: line endings of every kind,
/// blank lines, `data:` fields and arbitrary bytes.
fn stream() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        Just(b"\n".to_vec()),
        Just(b"\r\n".to_vec()),
        Just(b"\r".to_vec()),
        Just(b"\n\n".to_vec()),
        Just(b"\r\n\r\n".to_vec()),
        Just(b"data: ".to_vec()),
        Just(b"data:".to_vec()),
        Just(b"event: x\n".to_vec()),
        Just(b": keep-alive\n".to_vec()),
        Just(br#"{"usage":{"prompt_tokens":1}}"#.to_vec()),
        prop::collection::vec(any::<u8>(), 1..8),
    ];
    prop::collection::vec(piece, 0..24).prop_map(|pieces| pieces.concat())
}

/// Cut points into `len` bytes, sorted, possibly repeated (an empty chunk).
fn cuts(len: usize) -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(0..=len, 0..12).prop_map(|mut cuts| {
        cuts.sort_unstable();
        cuts
    })
}

fn split_at_cuts(bytes: &[u8], cuts: &[usize]) -> (Vec<Vec<u8>>, Vec<u8>) {
    let mut splitter = SseSplitter::default();
    let mut events = Vec::new();
    let mut from = 0;
    for &cut in cuts.iter().chain(std::iter::once(&bytes.len())) {
        events.extend(
            splitter
                .push(&bytes[from..cut])
                .into_iter()
                .map(|e| e.to_vec()),
        );
        from = cut;
    }
    (events, splitter.remainder().to_vec())
}

proptest! {
    #![proptest_config(cases(512))]

    #[test]
    fn any_chunking_yields_the_same_events((bytes, cuts) in stream().prop_flat_map(|b| {
        let len = b.len();
        (Just(b), cuts(len))
    })) {
        let whole = split_at_cuts(&bytes, &[]);
        let chunked = split_at_cuts(&bytes, &cuts);
        prop_assert_eq!(&chunked, &whole);

        // Nothing is lost or added, and each event is complete: it ends at its first blank
        // line, and the remainder has none.
        let (events, remainder) = whole;
        prop_assert_eq!([events.concat(), remainder.clone()].concat(), bytes);
        let ends_event = |b: &[u8]| b.windows(2).any(|w| w == b"\n\n") || b.windows(4).any(|w| w == b"\r\n\r\n");
        for event in &events {
            prop_assert!(event.ends_with(b"\n\n") || event.ends_with(b"\r\n\r\n"), "{event:?}");
            // It ends where the first blank line completes, not later.
            prop_assert!(!ends_event(&event[..event.len() - 1]), "{event:?}");
            let _ = data_of(event);
        }
        prop_assert!(!ends_event(&remainder), "{remainder:?}");
    }

    #[test]
    fn one_byte_at_a_time_is_a_chunking_too(bytes in stream()) {
        let every: Vec<usize> = (0..=bytes.len()).collect();
        prop_assert_eq!(split_at_cuts(&bytes, &every), split_at_cuts(&bytes, &[]));
    }
}
