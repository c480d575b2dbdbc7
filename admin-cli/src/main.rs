//! `tollctl`: administer a Tollgate gateway through its admin REST API.

mod api;
mod client;
mod commands;
mod duration;
mod hints;
mod litellm;
mod numbers;
mod output;
mod report;
mod token;

use std::process::ExitCode;

use anyhow::{Result, bail};
use clap::{Parser, Subcommand};

use commands::Ctx;
use commands::alerts::AlertsCmd;
use commands::experiments::ExperimentsCmd;
use commands::keys::KeysCmd;
use commands::limits::LimitsCmd;
use commands::pricing::PricingCmd;
use commands::requests::RequestsCmd;
use commands::spend::SpendCmd;
use commands::teams::TeamsCmd;
use commands::token::TokenCmd;
use output::Format;

#[derive(Debug, Parser)]
#[command(
    name = "tollctl",
    version,
    about = "Administer a Tollgate gateway through its admin API",
    after_help = "Bootstrap an admin token with:\n  export TOLLGATE_ADMIN_TOKEN=$(tollctl token mint --role admin)"
)]
struct Cli {
    /// Base URL of the gateway's admin listener.
    #[arg(
        long,
        global = true,
        help_heading = "Global options",
        env = "TOLLGATE_ADMIN_URL",
        default_value = "http://127.0.0.1:8081"
    )]
    url: String,
    /// Admin API token (a JWT). Prefer the environment variable: flags show up in `ps`.
    #[arg(
        long,
        global = true,
        help_heading = "Global options",
        env = "TOLLGATE_ADMIN_TOKEN",
        hide_env_values = true
    )]
    token: Option<String>,
    /// Output format.
    #[arg(long, global = true, help_heading = "Global options", value_enum, default_value_t = Format::Table)]
    format: Format,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Teams own experiments and keys.
    #[command(subcommand)]
    Teams(TeamsCmd),
    /// Experiments group keys within a team (the same commands as `campaigns`).
    #[command(subcommand)]
    Experiments(ExperimentsCmd),
    /// Eval campaigns: launch one (experiment, budget, limits, keys) in one call, close it,
    /// list them (the same commands as `experiments`).
    #[command(subcommand)]
    Campaigns(ExperimentsCmd),
    /// Virtual keys that clients use against the gateway.
    #[command(subcommand)]
    Keys(KeysCmd),
    /// Rate limits, concurrency and budgets of a team, an experiment or a key.
    #[command(subcommand)]
    Limits(LimitsCmd),
    /// Budget alerts posted to webhooks: rules, tests, and what fired.
    #[command(subcommand)]
    Alerts(AlertsCmd),
    /// Admin API tokens.
    #[command(subcommand)]
    Token(TokenCmd),
    /// Spend reports: totals by team, experiment, key, model, provider, day or hour.
    #[command(subcommand)]
    Spend(SpendCmd),
    /// The per-request log.
    #[command(subcommand)]
    Requests(RequestsCmd),
    /// Model prices: list, quote a usage, import LiteLLM's price map.
    #[command(subcommand)]
    Pricing(PricingCmd),
    /// The web console: print a URL that signs in with a new short-lived token.
    Ui(commands::ui::UiArgs),
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    client::install_crypto_provider();
    let cli = Cli::parse();
    let url = cli.url.clone();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", hints::explain(&e, &url));
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<()> {
    // Checked before any request, so `--format env` never creates something and then fails.
    let wants_env = matches!(
        cli.command,
        Command::Keys(KeysCmd::Issue { .. } | KeysCmd::Rotate { .. })
            | Command::Experiments(ExperimentsCmd::Launch(_))
            | Command::Campaigns(ExperimentsCmd::Launch(_))
    );
    if cli.format == Format::Env && !wants_env {
        bail!("{}", output::ENV_ONLY);
    }
    // Built only for commands that call the API: `token mint` needs neither URL nor token.
    let ctx = || -> Result<Ctx> {
        Ok(Ctx {
            client: client::Client::new(&cli.url, cli.token.as_deref())?,
            format: cli.format,
        })
    };
    match cli.command {
        Command::Teams(cmd) => commands::teams::run(cmd, &ctx()?).await,
        Command::Experiments(cmd) | Command::Campaigns(cmd) => {
            commands::experiments::run(cmd, &ctx()?).await
        }
        Command::Keys(cmd) => commands::keys::run(cmd, &ctx()?).await,
        Command::Limits(cmd) => commands::limits::run(cmd, &ctx()?).await,
        Command::Alerts(cmd) => commands::alerts::run(cmd, &ctx()?).await,
        Command::Token(cmd) => commands::token::run(cmd),
        Command::Ui(args) => commands::ui::run(args, &cli.url).await,
        Command::Spend(cmd) => commands::spend::run(cmd, &ctx()?).await,
        Command::Requests(cmd) => commands::requests::run(cmd, &ctx()?).await,
        Command::Pricing(cmd) => {
            let format = cli.format;
            let ctx = if commands::pricing::needs_api(&cmd) {
                Some(ctx()?)
            } else {
                None
            };
            commands::pricing::run(cmd, ctx.as_ref(), format).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_valid() {
        Cli::command().debug_assert();
    }

    #[test]
    fn campaigns_takes_the_experiments_commands_and_names_itself_in_usage() -> Result<()> {
        let cli = Cli::try_parse_from(["tollctl", "campaigns", "list", "--team", "research"])?;
        assert!(matches!(
            cli.command,
            Command::Campaigns(ExperimentsCmd::List { team: Some(_) })
        ));
        for (command, usage) in [
            ("campaigns", "Usage: tollctl campaigns close"),
            ("experiments", "Usage: tollctl experiments close"),
        ] {
            let err = Cli::try_parse_from(["tollctl", command, "close"])
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(err.contains(usage), "{err}");
        }
        Ok(())
    }

    #[test]
    fn negative_and_zero_numbers_say_what_is_allowed() {
        for (args, words) in [
            (
                vec!["campaigns", "launch", "--team", "t", "n", "--budget", "-5"],
                "a budget must be a positive amount in USD, like 50 or 0.25",
            ),
            (
                vec!["campaigns", "launch", "--team", "t", "n", "--budget", "0"],
                "a budget of 0 would refuse every request",
            ),
            (
                vec!["limits", "set", "key", "k", "--budget", "daily=0"],
                "a budget of 0 would refuse every request",
            ),
            (
                vec!["limits", "set", "key", "k", "--rpm", "-3"],
                "must be a whole number of requests per minute, at least 1",
            ),
            (
                vec!["keys", "issue", "--team", "t", "--count", "-2"],
                "must be a whole number of keys, 1 to 1000",
            ),
        ] {
            let err = Cli::try_parse_from(std::iter::once("tollctl").chain(args.clone()))
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(err.contains(words), "{args:?}: {err}");
            assert!(!err.contains("tip: to pass"), "{args:?}: {err}");
        }
    }

    #[test]
    fn spend_report_takes_group_by_as_well_as_by() -> Result<()> {
        for flag in ["--by", "--group-by"] {
            let cli = Cli::try_parse_from(["tollctl", "spend", "report", flag, "team,model"])?;
            let Command::Spend(commands::spend::SpendCmd::Report { by, .. }) = cli.command else {
                bail!("wrong command parsed");
            };
            assert_eq!(by, ["team", "model"]);
        }
        Ok(())
    }

    #[test]
    fn the_format_help_says_one_thing() {
        let help = Cli::command().render_long_help().to_string();
        let env_lines: Vec<&str> = help.lines().filter(|l| l.contains("env")).collect();
        assert!(
            help.contains("`keys issue`, `keys rotate` and `campaigns launch`"),
            "{help}"
        );
        assert!(!help.contains("only for `keys issue`\n"), "{help}");
        assert!(
            env_lines
                .iter()
                .all(|l| !l.ends_with("only for `keys issue`")),
            "{env_lines:?}"
        );
    }

    #[test]
    fn launch_and_close_live_under_campaigns_and_experiments() -> Result<()> {
        let cli = Cli::try_parse_from([
            "tollctl",
            "campaigns",
            "launch",
            "--team",
            "research",
            "gsm8k",
            "--budget",
            "500",
            "--period",
            "total",
            "--keys",
            "8",
            "--rpm",
            "600",
            "--tpm",
            "200000",
            "--models",
            "gpt-4o-mini,claude-sonnet-4",
            "--ends-in",
            "7d",
        ])?;
        assert!(matches!(
            cli.command,
            Command::Campaigns(ExperimentsCmd::Launch(_))
        ));
        let cli = Cli::try_parse_from([
            "tollctl",
            "experiments",
            "close",
            "gsm8k",
            "--team",
            "research",
        ])?;
        assert!(matches!(
            cli.command,
            Command::Experiments(ExperimentsCmd::Close(_))
        ));
        for bad in [
            vec![
                "tollctl",
                "campaigns",
                "launch",
                "--team",
                "t",
                "n",
                "--keys",
                "0",
            ],
            vec![
                "tollctl",
                "campaigns",
                "launch",
                "--team",
                "t",
                "n",
                "--budget",
                "-5",
            ],
            vec![
                "tollctl",
                "campaigns",
                "launch",
                "--team",
                "t",
                "n",
                "--period",
                "yearly",
            ],
            vec!["tollctl", "campaigns", "launch", "n"],
            vec!["tollctl", "limits", "set", "scope", "x", "--rpm", "5"],
            vec!["tollctl", "limits", "set", "key", "x", "--rpm", "0"],
            vec!["tollctl", "limits", "set", "key", "x", "--unset", "burst"],
            vec![
                "tollctl",
                "limits",
                "set",
                "key",
                "x",
                "--unset",
                "rpm",
                "--replace",
            ],
            vec![
                "tollctl",
                "keys",
                "rotate",
                "k",
                "--grace",
                "1h",
                "--no-grace",
            ],
            vec![
                "tollctl",
                "keys",
                "update",
                "k",
                "--models",
                "a",
                "--all-models",
            ],
            vec![
                "tollctl",
                "keys",
                "update",
                "k",
                "--expires-in",
                "1d",
                "--no-expiry",
            ],
        ] {
            assert!(
                Cli::try_parse_from(&bad).is_err(),
                "{bad:?} should be rejected"
            );
        }
        Ok(())
    }

    #[test]
    fn global_flags_work_after_the_subcommand() -> Result<()> {
        let cli = Cli::try_parse_from([
            "tollctl", "keys", "list", "--format", "csv", "--url", "http://x",
        ])?;
        assert_eq!(cli.format, Format::Csv);
        assert_eq!(cli.url, "http://x");
        Ok(())
    }

    #[test]
    fn issue_flags_parse_and_conflict() -> Result<()> {
        let cli = Cli::try_parse_from([
            "tollctl",
            "keys",
            "issue",
            "--team",
            "research",
            "--count",
            "3",
            "--models",
            "a,b",
            "--models",
            "c",
            "--expires-in",
            "30d",
        ])?;
        let Command::Keys(KeysCmd::Issue {
            count,
            models,
            expires_in,
            ..
        }) = cli.command
        else {
            bail!("wrong command parsed");
        };
        assert_eq!(count, 3);
        assert_eq!(models, ["a", "b", "c"]);
        assert_eq!(expires_in, Some(chrono::TimeDelta::days(30)));
        for bad in [
            vec!["tollctl", "keys", "issue", "--team", "t", "--count", "0"],
            vec!["tollctl", "keys", "issue", "--team", "t", "--count", "1001"],
            vec![
                "tollctl",
                "keys",
                "issue",
                "--team",
                "t",
                "--expires-in",
                "30x",
            ],
            vec![
                "tollctl",
                "keys",
                "issue",
                "--team",
                "t",
                "--expires-in",
                "1d",
                "--expires-at",
                "2030-01-01T00:00:00Z",
            ],
            vec![
                "tollctl",
                "experiments",
                "create",
                "--team",
                "t",
                "n",
                "--ends-in",
                "1d",
                "--ends-at",
                "2030-01-01T00:00:00Z",
            ],
            vec!["tollctl", "keys", "issue"],
        ] {
            assert!(
                Cli::try_parse_from(&bad).is_err(),
                "{bad:?} should be rejected"
            );
        }
        Ok(())
    }

    #[tokio::test]
    async fn env_format_is_refused_before_any_request() {
        let cli = Cli::try_parse_from([
            "tollctl", "teams", "create", "x", "--format", "env", "--token", "t",
        ]);
        let err = match cli {
            Ok(cli) => run(cli).await.err().map(|e| e.to_string()),
            Err(e) => Some(e.to_string()),
        };
        assert!(err.unwrap_or_default().contains(output::ENV_ONLY));
    }
}
