//! The web console in a real browser (headless Chromium over WebDriver) against a real
//! gateway, PostgreSQL, Redis and the mock upstream: sign-in with the `tollctl ui` URL, a
//! campaign launched and its keys issued from the console, spend from real requests equal to
//! the ledger, a key revoked from the console refused at once, a campaign closed, names with
//! markup shown as text, a team token seeing only its team, and no other host asked.

use std::process::Command;

use reqwest::Method;
use rust_decimal::Decimal;
use serde_json::{Value, json};

use crate::common::browser::Browser;
use crate::common::requests::exact_request;
use crate::common::{JWT_SECRET, TestApp, tollctl};

const MARKUP: &str = "<img src=x onerror=alert(1)>";

/// The URL `tollctl ui` prints (with `--team` when given).
async fn ui_url(app: &TestApp, extra: &[&str]) -> String {
    let mut command = Command::new(tollctl::path());
    command
        .env("TOLLGATE_ADMIN_URL", &app.admin_url)
        .env("TOLLGATE_ADMIN_JWT_SECRET", JWT_SECRET)
        .env_remove("TOLLGATE_ADMIN_TOKEN")
        .arg("ui")
        .args(extra);
    let out = tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap();
    let url = tollctl::stdout_of(&["ui"], out).trim().to_owned();
    assert!(
        url.starts_with(&format!("{}/ui/#token=", app.admin_url)),
        "{url}"
    );
    url
}

async fn ledger_sum(app: &TestApp, sql: &str) -> Decimal {
    let sum: Option<Decimal> = sqlx::query_scalar(sql).fetch_one(&app.db).await.unwrap();
    sum.unwrap_or_default()
}

/// Waits for `n` rows in the ledger, then sends nothing more.
async fn settle(app: &TestApp, n: usize) {
    app.ledger_rows(n).await;
}

async fn chat_status(app: &TestApp, key: &str) -> u16 {
    let (body, _) = exact_request(false);
    app.chat(key, body).await.status().as_u16()
}

async fn secrets_on_page(browser: &Browser) -> Vec<String> {
    let values = browser
        .js(
            "return [...document.querySelectorAll('.issued .secret')].map(e => e.textContent)",
            vec![],
        )
        .await;
    serde_json::from_value(values).unwrap()
}

async fn prefix_of(app: &TestApp, experiment: &str, secret: &str) -> String {
    let (_, keys) = app
        .admin(Method::GET, &format!("/keys?experiment={experiment}"), None)
        .await;
    keys["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["prefix"].as_str().unwrap().to_owned())
        .find(|p| secret.starts_with(p.as_str()))
        .unwrap()
}

/// Every URL the page has loaded (the document and each resource and API call).
async fn urls_asked(browser: &Browser) -> Vec<String> {
    let urls = browser
        .js(
            "return [location.href, ...performance.getEntriesByType('resource').map(e => e.name)]",
            vec![],
        )
        .await;
    serde_json::from_value(urls).unwrap()
}

#[tokio::test]
async fn a_campaign_launched_in_the_console_shows_the_ledgers_spend_and_its_keys_can_be_revoked_and_it_closed()
 {
    let app = TestApp::spawn().await;
    let (status, team) = app
        .admin(Method::POST, "/teams", Some(json!({"name": "research"})))
        .await;
    assert_eq!(status, 201, "{team}");
    let team_id = team["id"].as_str().unwrap().to_owned();
    let browser = Browser::start().await;

    // Sign in with the printed URL: the token leaves the address bar for session storage.
    browser.goto(&ui_url(&app, &[]).await).await;
    browser.wait_title("Overview").await;
    let url = browser.client.current_url().await.unwrap().to_string();
    assert!(!url.contains("token"), "{url}");
    let stored = browser.js("return sessionStorage.length", vec![]).await;
    assert_eq!(stored, json!(1));
    assert_eq!(browser.text("#who").await, "admin");

    // Launch a campaign from the console: its keys are shown once.
    browser.open("#/launch", "Launch a campaign").await;
    browser
        .wait("#launch-team")
        .await
        .select_by_value(&team_id)
        .await
        .unwrap();
    browser.fill("#launch-name", "gsm8k").await;
    browser.fill("#launch-tags", "nightly, math").await;
    browser.fill("#launch-keys", "2").await;
    browser.fill("#launch-models", "gpt-4o-mini").await;
    browser.fill("#launch-rpm", "600").await;
    browser.fill("#launch-budget", "1").await;
    browser.click("#launch-form button[type=submit]").await;
    browser.wait("#launch-result .issued").await;
    browser.screenshot("launch").await;
    let launched = secrets_on_page(&browser).await;
    assert_eq!(launched.len(), 2, "{launched:?}");
    let (_, experiments) = app.admin(Method::GET, "/experiments", None).await;
    let experiment = experiments["data"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(experiments["data"][0]["name"], "gsm8k");

    // Issue one more key from the campaign's page, named with markup.
    browser.click("#launched-link").await;
    browser.wait_title("gsm8k running").await;
    browser.fill("#issue-count", "1").await;
    browser.fill("#issue-name", MARKUP).await;
    browser.click("#issue-form button[type=submit]").await;
    browser.wait(".issued .secret").await;
    let marked = secrets_on_page(&browser).await;
    assert_eq!(marked.len(), 1);

    // Real requests through the gateway and the mock upstream.
    let mut sent = 0;
    for (key, count) in [(&launched[0], 3), (&launched[1], 2), (&marked[0], 1)] {
        for _ in 0..count {
            assert_eq!(chat_status(&app, key).await, 200);
            sent += 1;
        }
    }
    settle(&app, sent).await;
    let total = ledger_sum(&app, "SELECT sum(cost_usd) FROM request_log").await;
    assert!(total > Decimal::ZERO);

    // The campaign's page: its total is the ledger's, names stay text.
    browser
        .open(&format!("#/campaign/{experiment}"), "gsm8k running")
        .await;
    assert_eq!(browser.exact("#campaign-total .money").await, total);
    let page = browser.text(".page").await;
    assert!(
        !page.contains("null") && !page.contains("undefined"),
        "{page}"
    );
    let markup_as_text = browser
        .js(
            "return [...document.querySelectorAll('#campaign-keys td')].some(td => td.textContent === arguments[0]) \
             && document.querySelectorAll('#campaign-keys img, .page img').length === 0",
            vec![json!(MARKUP)],
        )
        .await;
    assert_eq!(markup_as_text, json!(true));
    let chart_bars = browser
        .js(
            "return document.querySelectorAll('.chart rect[stroke]').length",
            vec![],
        )
        .await;
    assert!(chart_bars.as_u64().unwrap() >= 1, "{chart_bars}");
    browser.screenshot("campaign").await;

    // The overview's numbers are the ledger's, to the last digit and to the cent.
    browser.open("#/", "Overview").await;
    for card in [
        "#spend-today",
        "#spend-week",
        "#spend-month",
        "#range-spend",
    ] {
        assert_eq!(
            browser.exact(&format!("{card} .money")).await,
            total,
            "{card}"
        );
    }
    assert_eq!(
        browser.text("#range-requests .card-value").await,
        sent.to_string()
    );
    let top = browser.text("#top-experiment tbody").await;
    assert!(top.contains("gsm8k"), "{top}");
    browser.screenshot("overview").await;
    browser
        .wait("#stack")
        .await
        .select_by_value("model")
        .await
        .unwrap();
    browser
        .wait_xpath("//figcaption[text()='Spend per day by model']")
        .await;
    let legend = browser.text(".legend").await;
    assert!(legend.contains("gpt-4o-mini"), "{legend}");

    // The campaigns list: budget bar, burn rate, keys.
    browser.open("#/campaigns", "Campaigns").await;
    let row = browser.text("#campaigns tbody tr").await;
    assert!(
        row.contains("gsm8k") && row.contains("3 active / 3"),
        "{row}"
    );
    let budget = browser.text("#campaigns .budget-text").await;
    assert!(budget.contains("left of $1.00"), "{budget}");
    browser.screenshot("campaigns").await;

    // Revoke a key from the console: the next request with it is refused.
    let revoked = prefix_of(&app, &experiment, &launched[1]).await;
    browser
        .open(&format!("#/campaign/{experiment}"), "gsm8k running")
        .await;
    let row = format!("//table[@id='campaign-keys']//tr[td/code[text()='{revoked}']]");
    browser
        .wait_xpath(&format!("{row}//button[text()='Revoke']"))
        .await
        .click()
        .await
        .unwrap();
    browser
        .wait_xpath(&format!("{row}//button[text()='Yes, revoke']"))
        .await
        .click()
        .await
        .unwrap();
    browser
        .wait_xpath(&format!("{row}/td[3][text()='revoked']"))
        .await;
    assert_eq!(chat_status(&app, &launched[1]).await, 403);
    assert_eq!(chat_status(&app, &launched[0]).await, 200);
    sent += 1; // a revoked key is refused before anything is recorded
    settle(&app, sent).await;

    // Close the campaign: every key revoked, the final report equal to the ledger.
    browser.click("#close-campaign button").await;
    browser
        .wait_xpath("//div[@id='close-campaign']//button[text()='Yes, close campaign']")
        .await
        .click()
        .await
        .unwrap();
    browser.wait("#final-report").await;
    let closed_total = ledger_sum(&app, "SELECT sum(cost_usd) FROM request_log").await;
    assert_eq!(browser.exact("#final-report p .money").await, closed_total);
    assert_eq!(chat_status(&app, &launched[0]).await, 403);
    let page = browser.text(".page").await;
    assert!(
        !page.contains("null") && !page.contains("undefined"),
        "{page}"
    );
    assert!(
        !page.contains("Issue more keys"),
        "a closed campaign offers no new keys"
    );
    browser.screenshot("campaign-closed").await;

    // The other pages, with their data.
    browser.open("#/keys", "Keys").await;
    browser
        .wait("#keys-status")
        .await
        .select_by_value("")
        .await
        .unwrap();
    browser
        .wait_xpath("//table[@id='keys']//td[text()='revoked']")
        .await;
    let keys_page = browser.text("#keys tbody").await;
    assert!(keys_page.contains(MARKUP), "{keys_page}");
    browser.screenshot("keys").await;
    browser.open("#/requests", "Requests").await;
    let log = browser.text("#requests tbody").await;
    assert!(
        log.contains("gpt-4o-mini") && log.contains("gsm8k"),
        "{log}"
    );
    browser.screenshot("requests").await;
    browser.open("#/pricing", "Pricing").await;
    browser.fill("#quote-model", "gpt-4o-mini").await;
    browser.fill("#quote-input", "1000000").await;
    browser.fill("#quote-output", "1000000").await;
    browser.click("#quote-form button[type=submit]").await;
    assert_eq!(
        browser.exact("#quote-result strong .money").await,
        "0.75".parse().unwrap()
    );
    browser.screenshot("pricing").await;
    browser.open("#/audit", "Audit log").await;
    let audit = browser.text("#audit tbody").await;
    assert!(
        audit.contains("campaign.close") || audit.contains("close"),
        "{audit}"
    );
    browser.screenshot("audit").await;

    // At a phone's width the overview still fits.
    browser.resize(390, 844).await;
    browser.open("#/", "Overview").await;
    let overflow = browser
        .js(
            "return document.documentElement.scrollWidth <= window.innerWidth + 1",
            vec![],
        )
        .await;
    assert_eq!(
        overflow,
        json!(true),
        "the overview scrolls sideways at 390 px"
    );
    browser.screenshot("overview-phone").await;
    browser.resize(1280, 900).await;

    // Nothing was asked of any other host.
    let urls = urls_asked(&browser).await;
    assert!(urls.len() > 20, "{urls:?}");
    for url in &urls {
        assert!(url.starts_with(&format!("{}/", app.admin_url)), "{url}");
    }

    // Sign out, and an expired token back to sign-in with a message saying so.
    browser.click("#sign-out").await;
    browser.wait("#sign-in:not([hidden])").await;
    assert_eq!(
        browser.js("return sessionStorage.length", vec![]).await,
        json!(0)
    );
    let expired = expired_token();
    browser
        .goto(&format!("{}/ui/#token={expired}", app.admin_url))
        .await;
    browser.wait("#sign-in-message:not([hidden])").await;
    let message = browser.text("#sign-in-message").await;
    assert!(message.contains("expired"), "{message}");
    browser.screenshot("sign-in-expired").await;
    browser.close().await;
}

fn expired_token() -> String {
    let now = chrono::Utc::now().timestamp() as u64;
    tollgate::admin::mint(
        &tollgate::config::Secret::new(JWT_SECRET.to_string()),
        &tollgate::admin::Claims {
            sub: "test".into(),
            role: tollgate::admin::Role::Admin,
            team: None,
            iat: now - 7200,
            exp: now - 3600,
        },
    )
    .unwrap()
}

async fn campaign(app: &TestApp, team: &str, name: &str) -> (String, String) {
    let (status, launched) = app
        .admin(
            Method::POST,
            "/campaigns",
            Some(json!({"team": team, "name": name, "keys": 1})),
        )
        .await;
    assert_eq!(status, 201, "{launched}");
    (
        launched["experiment"]["id"].as_str().unwrap().to_owned(),
        launched["keys"][0]["key"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test]
async fn a_team_token_in_the_console_sees_and_changes_only_its_own_team() {
    let app = TestApp::spawn().await;
    for name in ["alpha", "beta"] {
        let (status, _) = app
            .admin(Method::POST, "/teams", Some(json!({"name": name})))
            .await;
        assert_eq!(status, 201);
    }
    let (_, alpha_key) = campaign(&app, "alpha", "alpha-eval").await;
    let (beta_experiment, beta_key) = campaign(&app, "beta", "beta-secret-eval").await;
    for key in [&alpha_key, &alpha_key, &beta_key] {
        assert_eq!(chat_status(&app, key).await, 200);
    }
    settle(&app, 3).await;
    let alpha_total = ledger_sum(
        &app,
        "SELECT sum(r.cost_usd) FROM request_log r JOIN teams t ON t.id = r.team_id WHERE t.name = 'alpha'",
    )
    .await;

    let browser = Browser::start().await;
    browser
        .goto(&ui_url(&app, &["--team", "alpha"]).await)
        .await;
    browser.wait_title("Overview").await;
    assert_eq!(browser.text("#who").await, "team alpha");
    assert_eq!(browser.exact("#spend-today .money").await, alpha_total);
    browser.open("#/campaigns", "Campaigns").await;
    let list = browser.text("#campaigns tbody").await;
    assert!(
        list.contains("alpha-eval") && !list.contains("beta"),
        "{list}"
    );
    assert!(
        browser
            .client
            .find(fantoccini::Locator::Css("#filter-team"))
            .await
            .is_err(),
        "a team token has no team filter"
    );

    // Another team's campaign by id: the API's not-found, and none of its names.
    browser
        .js(
            "location.hash = arguments[0]",
            vec![json!(format!("#/campaign/{beta_experiment}"))],
        )
        .await;
    let error = browser.text("#view .error").await;
    assert!(error.contains("no such experiment"), "{error}");
    let source = browser.client.source().await.unwrap();
    assert!(
        !source.contains("beta-secret-eval"),
        "another team's name on the page"
    );

    // Launching in its own team works; its keys page lists only its own keys.
    browser.open("#/launch", "Launch a campaign").await;
    assert_eq!(
        browser
            .wait("#launch-team")
            .await
            .prop("value")
            .await
            .unwrap(),
        Some("alpha".to_owned())
    );
    browser.fill("#launch-name", "alpha-second").await;
    browser.click("#launch-form button[type=submit]").await;
    browser.wait("#launch-result .issued").await;
    browser.open("#/keys", "Keys").await;
    let keys = browser.text("#keys tbody").await;
    assert!(
        keys.contains("alpha-second") && !keys.contains("beta"),
        "{keys}"
    );
    let (_, experiments) = app
        .admin(Method::GET, "/experiments?team=alpha", None)
        .await;
    let names: Vec<&str> = experiments["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"alpha-second"), "{names:?}");
    browser.close().await;
}

#[tokio::test]
async fn the_console_is_served_with_a_strict_policy_and_asks_only_its_own_origin() {
    let app = TestApp::spawn().await;
    let page = app
        .http
        .get(format!("{}/ui", app.admin_url))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200, "GET /ui redirects to /ui/");
    assert_eq!(page.url().path(), "/ui/");
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    for directive in [
        "default-src 'none'",
        "script-src 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(directive), "{csp}");
    }
    assert!(!csp.contains("unsafe"), "{csp}");
    assert_eq!(page.headers()["x-frame-options"], "DENY");
    let html = page.text().await.unwrap();
    assert!(!html.contains("<script>"), "no inline script");
    // No file of the console names another host, and together they stay small.
    let mut bytes = 0;
    for asset in tollgate::console::ASSETS {
        bytes += asset.body.len();
        for (i, _) in asset.body.match_indices("://") {
            let around = &asset.body[i.saturating_sub(10)..(i + 30).min(asset.body.len())];
            assert!(
                around.contains("http://www.w3.org/2000/svg"),
                "{}: {around}",
                asset.name
            );
        }
        let served = app
            .http
            .get(format!("{}/ui/{}", app.admin_url, asset.name))
            .send()
            .await
            .unwrap();
        assert_eq!(served.status(), 200, "{}", asset.name);
    }
    assert!(bytes < 300 * 1024, "the console is {bytes} bytes");
    let missing = app
        .http
        .get(format!("{}/ui/nope.js", app.admin_url))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    // The admin API is unchanged beside it: still a token, still JSON errors.
    let (status, body) = (
        app.http
            .get(format!("{}/admin/v1/teams", app.admin_url))
            .send()
            .await
            .unwrap()
            .status(),
        Value::Null,
    );
    assert_eq!(status, 401, "{body}");
}

#[tokio::test]
async fn listings_come_as_csv_with_the_jsons_fields_and_names_as_they_are() {
    let app = TestApp::spawn().await;
    let (secret, key) = app.issue_key(json!({"name": "a,\"quoted\" name"})).await;
    assert_eq!(chat_status(&app, &secret).await, 200);
    settle(&app, 1).await;
    let csv = |path: &str| {
        let request = app
            .http
            .get(format!("{}/admin/v1{path}", app.admin_url))
            .bearer_auth(&app.admin_token);
        async move {
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), 200);
            assert_eq!(
                response.headers()["content-type"],
                "text/csv; charset=utf-8"
            );
            response.text().await.unwrap()
        }
    };
    let keys = csv("/keys?format=csv").await;
    let mut lines = keys.lines();
    assert!(
        lines
            .next()
            .unwrap()
            .starts_with("id,team_id,experiment_id,name,prefix,"),
        "{keys}"
    );
    let row = lines.next().unwrap();
    assert!(row.contains(key["id"].as_str().unwrap()), "{row}");
    assert!(row.contains("\"a,\"\"quoted\"\" name\""), "{row}");
    let requests = csv("/requests?format=csv").await;
    assert_eq!(requests.lines().count(), 2, "{requests}");
    assert!(
        requests.starts_with("request_id,created_at,key_id,key_prefix,"),
        "{requests}"
    );
    let audit = csv("/audit?format=csv").await;
    assert!(
        audit.starts_with("id,at,actor,role,team_id,action,"),
        "{audit}"
    );
    let pricing = csv("/pricing?format=csv").await;
    assert!(
        pricing.starts_with("name,provider,effective_from,"),
        "{pricing}"
    );
    let (status, body) = app.admin(Method::GET, "/keys?format=xml", None).await;
    assert_eq!(status, 400, "{body}");
}

/// How long each page takes to be shown with a million ledger rows, measured by the page
/// itself (User Timing, from the navigation or the click to the rendered page). A
/// measurement, not a timed test: `cargo test --release --test it console::measure -- --ignored --nocapture`.
#[tokio::test]
#[ignore]
async fn measure_pages_with_a_million_ledger_rows() {
    let _heavy = crate::common::heavy().await;
    let app = TestApp::spawn().await;
    let start = (chrono::Utc::now() - chrono::Duration::days(90))
        .format("%Y-%m-%d %H:00:00+00")
        .to_string();
    crate::common::million::load(&app, &start).await;
    let (_, experiments) = app.admin(Method::GET, "/experiments", None).await;
    let experiment = experiments["data"][0]["id"].as_str().unwrap().to_owned();
    let campaign_title = format!(
        "{} running",
        experiments["data"][0]["name"].as_str().unwrap()
    );
    let browser = Browser::start().await;
    browser.goto(&ui_url(&app, &[]).await).await;
    browser.wait_title("Overview").await;
    let first = browser
        .js(
            "return performance.getEntriesByName('tollgate:overview').at(-1).duration",
            vec![],
        )
        .await;
    println!("first load, overview: {:.0} ms", first.as_f64().unwrap());
    let pages = [
        ("#/campaigns", "Campaigns", "campaigns"),
        (
            &*format!("#/campaign/{experiment}"),
            &*campaign_title,
            "campaign",
        ),
        ("#/keys", "Keys", "keys"),
        ("#/requests", "Requests", "requests"),
        ("#/pricing", "Pricing", "pricing"),
        ("#/audit", "Audit log", "audit"),
        ("#/launch", "Launch a campaign", "launch"),
        ("#/", "Overview", "overview"),
    ];
    for round in 0..3 {
        let mut line = format!("round {}:", round + 1);
        for (fragment, title, name) in pages {
            browser.open(fragment, title).await;
            let ms = browser
                .js(
                    "return performance.getEntriesByName(arguments[0]).at(-1).duration",
                    vec![json!(format!("tollgate:{name}"))],
                )
                .await;
            line.push_str(&format!(" {name} {:.0} ms,", ms.as_f64().unwrap()));
        }
        println!("{line}");
    }
    browser.close().await;
}

#[tokio::test]
async fn a_campaigns_page_shows_its_model_budgets_and_its_limits_form_keeps_them() {
    let app = TestApp::spawn().await;
    let (status, _) = app
        .admin(Method::POST, "/teams", Some(json!({"name": "judges"})))
        .await;
    assert_eq!(status, 201);
    let models =
        json!([{"model": "gpt-4o-mini", "budgets": [{"period": "total", "amount_usd": "0.5"}]}]);
    let (status, launched) = app
        .admin(
            Method::POST,
            "/campaigns",
            Some(json!({"team": "judges", "name": "judged", "keys": 1,
                        "limits": {"budgets": [{"period": "total", "amount_usd": "1"}], "models": models}})),
        )
        .await;
    assert_eq!(status, 201, "{launched}");
    let experiment = launched["experiment"]["id"].as_str().unwrap().to_owned();
    let key = launched["keys"][0]["key"].as_str().unwrap().to_owned();
    assert_eq!(chat_status(&app, &key).await, 200);
    settle(&app, 1).await;
    let spent = ledger_sum(&app, "SELECT sum(cost_usd) FROM request_log").await;

    let browser = Browser::start().await;
    browser.goto(&ui_url(&app, &[]).await).await;
    browser.wait_title("Overview").await;
    browser
        .open(&format!("#/campaign/{experiment}"), "judged running")
        .await;
    let model = browser
        .text("#model-limits [data-model='gpt-4o-mini']")
        .await;
    assert!(model.starts_with("Model gpt-4o-mini"), "{model}");
    assert!(model.contains("left of"), "{model}");
    assert_eq!(
        browser
            .exact("#model-limits [data-model='gpt-4o-mini'] .budget .money")
            .await,
        spent
    );

    // Changing the campaign's own limits in the form keeps its limits on models.
    browser
        .js(
            "document.querySelector('#limits-form').closest('details').open = true",
            vec![],
        )
        .await;
    browser.fill("#limit-rpm", "100").await;
    browser.click("#limits-form button[type=submit]").await;
    browser.wait(".notice").await;
    let (_, shown) = app
        .admin(
            Method::GET,
            &format!("/experiments/{experiment}/limits"),
            None,
        )
        .await;
    assert_eq!(shown["limits"]["rpm"], 100);
    assert_eq!(shown["limits"]["models"][0]["model"], "gpt-4o-mini");
    assert_eq!(
        shown["limits"]["models"][0]["budgets"],
        models[0]["budgets"]
    );
    browser.close().await;
}
