//! A few API refusals said again in the words of the command that was typed, so the fix is
//! the command to run: an experiment named without its team, a key named by something other
//! than its id, and tollctl pointed at the gateway's data-plane listener. Everything else is
//! the API's own message.

use crate::client::ApiError;

/// The error as tollctl prints it (after `error: `).
pub fn explain(error: &anyhow::Error, url: &str) -> String {
    let Some(api) = error.downcast_ref::<ApiError>() else {
        return format!("{error:#}");
    };
    explain_api(api, url, &typed_command(std::env::args().skip(1)))
}

fn explain_api(api: &ApiError, url: &str, typed: &str) -> String {
    let named = first_quoted(&api.message).unwrap_or("?");
    match api.code.as_deref() {
        Some("team_required") => format!(
            "{named:?} is an experiment name, and experiment names are unique only within a team: \
             add its team, e.g. `{typed} --team <team>` (or give the experiment's id: \
             `tollctl experiments list` shows them)"
        ),
        Some("not_a_key_id") => format!(
            "{named:?} is not a key id: keys are named by their id (`tollctl keys list --team <team>` shows them)"
        ),
        _ if api.status == 404 && api.message.contains("data-plane listener") => format!(
            "{url} is the gateway's data-plane listener (/v1/...), not its admin API: point \
             TOLLGATE_ADMIN_URL or --url at the admin listener (admin_listen in the gateway's \
             config, default http://127.0.0.1:8081)"
        ),
        _ => api.to_string(),
    }
}

/// The first `` `quoted` `` word of an API message: what the request named.
fn first_quoted(message: &str) -> Option<&str> {
    let (_, rest) = message.split_once('`')?;
    rest.split_once('`').map(|(word, _)| word)
}

/// `tollctl` and the arguments as typed, without the token, the secret or the URL (which may
/// carry credentials): the message is safe to paste anywhere.
fn typed_command(args: impl Iterator<Item = String>) -> String {
    const HIDDEN: [&str; 3] = ["--token", "--secret", "--url"];
    let mut out = vec!["tollctl".to_owned()];
    let mut args = args.peekable();
    while let Some(arg) = args.next() {
        if HIDDEN.contains(&arg.as_str()) {
            args.next();
            continue;
        }
        if HIDDEN.iter().any(|h| arg.starts_with(&format!("{h}="))) {
            continue;
        }
        out.push(shell_word(&arg));
    }
    out.join(" ")
}

fn shell_word(arg: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "-_.,=:/@+%".contains(c);
    if !arg.is_empty() && arg.chars().all(plain) {
        arg.to_owned()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(status: u16, code: Option<&str>, message: &str) -> ApiError {
        ApiError {
            status,
            message: message.to_owned(),
            code: code.map(str::to_owned),
            param: None,
        }
    }

    fn typed(args: &[&str]) -> String {
        typed_command(args.iter().map(|a| (*a).to_owned()))
    }

    #[test]
    fn an_experiment_without_its_team_gets_the_command_to_type() {
        let e = api(
            400,
            Some("team_required"),
            "`gsm8k` is not an experiment id, and experiment names are unique only within a team: ...",
        );
        let command = typed(&["limits", "show", "experiment", "gsm8k", "--token", "s3cret"]);
        let message = explain_api(&e, "http://h:8081", &command);
        assert!(
            message.contains("`tollctl limits show experiment gsm8k --team <team>`"),
            "{message}"
        );
        assert!(
            message.starts_with("\"gsm8k\" is an experiment name"),
            "{message}"
        );
        assert!(
            !message.contains("s3cret") && !message.contains("?team="),
            "{message}"
        );
    }

    #[test]
    fn secrets_and_urls_are_never_echoed() {
        assert_eq!(
            typed(&[
                "spend",
                "report",
                "--token=abc",
                "--url",
                "http://u:p@h",
                "--experiment",
                "a b"
            ]),
            "tollctl spend report --experiment 'a b'"
        );
    }

    #[test]
    fn the_data_plane_is_recognised_and_other_errors_pass_through() {
        let e = api(
            404,
            Some("not_found"),
            "no such endpoint on the data-plane listener (/v1/...)",
        );
        let message = explain_api(&e, "http://127.0.0.1:8080", "tollctl teams list");
        assert!(message.contains("http://127.0.0.1:8080 is the gateway's data-plane listener"));
        assert!(message.contains("TOLLGATE_ADMIN_URL"), "{message}");
        let e = api(404, Some("not_found"), "no team `x`");
        assert_eq!(explain_api(&e, "u", "t"), "no team `x` (HTTP 404)");
        let e = api(400, Some("not_a_key_id"), "`worker-3` is not a key id: ...");
        assert!(explain_api(&e, "u", "t").starts_with("\"worker-3\" is not a key id"));
    }
}
