//! Property tests: the body peek and rewrite never panic on any bytes, and a rewrite changes
//! nothing but the values it must.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use proptest::prelude::*;
use serde_json::Value;

use super::{ChatPeek, rewrite};
use crate::test_support::{cases, json_text};

/// A member name and how it is written: plainly, or every character as a `\u` escape.
fn key() -> impl Strategy<Value = (String, String)> {
    prop_oneof![
        any::<String>().prop_map(|k| (k.clone(), Value::String(k).to_string())),
        "[a-z_]{1,8}".prop_map(|k| {
            let escaped: String = k
                .chars()
                .map(|c| format!("\\u{:04x}", u32::from(c)))
                .collect();
            (k, format!("\"{escaped}\""))
        }),
    ]
    .prop_filter(
        "model and stream_options are placed by the test",
        |(k, _)| k != "model" && k != "stream_options",
    )
}

fn space() -> impl Strategy<Value = String> {
    "[ \t\r\n]{0,2}"
}

/// One member as written: spaces around the name, the colon and the value.
fn member(key_raw: String, value: String) -> impl Strategy<Value = String> {
    (space(), space(), space(), space())
        .prop_map(move |(a, b, c, d)| format!("{a}{key_raw}{b}:{c}{value}{d}"))
}

/// An object with an optional `model` member; returns the members (with the model's value
/// as a placeholder to substitute), the spaces before `}` and after it.
fn object() -> impl Strategy<Value = (Vec<String>, String, String)> {
    (
        prop::collection::vec((key(), json_text()), 0..6),
        any::<prop::sample::Index>(),
        any::<bool>(),
        space(),
        space(),
    )
        .prop_flat_map(|(members, at, with_model, before_close, after_close)| {
            let mut written: Vec<BoxedStrategy<String>> = members
                .into_iter()
                .map(|((_, raw), value)| member(raw, value).boxed())
                .collect();
            if with_model {
                let at = at.index(written.len() + 1);
                written.insert(
                    at,
                    member("\"model\"".to_owned(), "\u{0}MODEL\u{0}".to_owned()).boxed(),
                );
            }
            (written, Just(before_close), Just(after_close))
        })
}

fn render(
    members: &[String],
    model_value: &str,
    before_close: &str,
    after_close: &str,
    append: Option<&str>,
) -> String {
    let mut body = format!("{{{}{before_close}", members.join(","));
    if let Some(extra) = append {
        if !members.is_empty() {
            body.push(',');
        }
        body.push_str(extra);
    }
    body.push('}');
    body.push_str(after_close);
    body.replace("\u{0}MODEL\u{0}", model_value)
}

proptest! {
    #![proptest_config(cases(512))]

    #[test]
    fn peek_and_rewrite_never_panic_on_any_bytes(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = ChatPeek::parse(&bytes);
        let _ = rewrite(&bytes, Some("upstream"), true);
        let _ = rewrite(&bytes, None, false);
    }

    #[test]
    fn peek_and_rewrite_never_panic_on_any_json(text in json_text()) {
        let _ = ChatPeek::parse(text.as_bytes());
        let out = rewrite(text.as_bytes(), Some("upstream"), true);
        // Only an object can be rewritten, and what comes out is JSON again (by the grammar:
        // numbers beyond a float's range are forwarded as they came).
        if let Ok(out) = out {
            let parsed = serde_json::from_slice::<Box<serde_json::value::RawValue>>(&out);
            prop_assert!(parsed.is_ok(), "{}", String::from_utf8_lossy(&out));
        }
    }

    #[test]
    fn rewrite_changes_only_the_model_and_stream_options(
        (members, before_close, after_close) in object(),
        model_value in json_text(),
        new_model in proptest::option::of(any::<String>()),
        force in any::<bool>(),
    ) {
        let body = render(&members, &model_value, &before_close, &after_close, None);
        let new_value = new_model.as_ref().map_or(model_value.clone(), |m| Value::String(m.clone()).to_string());
        let usage = force.then_some(r#""stream_options":{"include_usage":true}"#);
        let expected = render(&members, &new_value, &before_close, &after_close, usage);
        let out = rewrite(body.as_bytes(), new_model.as_deref(), force).unwrap();
        prop_assert_eq!(String::from_utf8(out.to_vec()).unwrap(), expected);
        if let Some(new_model) = &new_model && members.iter().any(|m| m.contains("\u{0}MODEL\u{0}")) {
            let peek = ChatPeek::parse(&out);
            if let Ok(peek) = peek {
                prop_assert_eq!(peek.model(), new_model.as_str());
            }
        }
    }

    #[test]
    fn rewrite_merges_include_usage_into_any_stream_options(
        before in prop::collection::vec((key(), json_text()), 0..3),
        options in json_text(),
        after in prop::collection::vec((key(), json_text()), 0..3),
    ) {
        let member = |(k, v): &((String, String), String)| format!("{}:{v}", k.1);
        let mut members: Vec<String> = before.iter().map(member).collect();
        members.push(format!("\"stream_options\":{options}"));
        members.extend(after.iter().map(member));
        let body = format!("{{{}}}", members.join(","));
        let out = rewrite(body.as_bytes(), None, true).unwrap();
        let text = String::from_utf8(out.to_vec()).unwrap();
        // Everything before and after the options' value is untouched.
        let (head, _) = body.split_once("\"stream_options\":").unwrap();
        prop_assert!(text.starts_with(&format!("{head}\"stream_options\":{{")), "{text}");
        let tail: String = members.iter().skip(before.len() + 1).map(|m| format!(",{m}")).collect();
        prop_assert!(text.ends_with(&format!("}}{tail}}}")), "{text}");
        let rewritten = &text[head.len() + "\"stream_options\":".len()..text.len() - tail.len() - 1];
        // An object keeps its bytes and gains include_usage; anything else is replaced.
        if !options.starts_with('{') {
            prop_assert_eq!(rewritten, r#"{"include_usage":true}"#);
        } else if !options.contains("\"include_usage\"") {
            let close = options.rfind('}').unwrap();
            let comma = if options[1..close].trim().is_empty() { "" } else { "," };
            let expected = format!("{}{comma}\"include_usage\":true}}", &options[..close]);
            prop_assert_eq!(rewritten, expected.as_str());
        }
    }
}
