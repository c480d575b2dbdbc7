//! The console's files, embedded at compile time.

pub struct Asset {
    pub name: &'static str,
    pub content_type: &'static str,
    pub body: &'static str,
}

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

macro_rules! asset {
    ($name:literal, $type:expr) => {
        Asset {
            name: $name,
            content_type: $type,
            body: include_str!(concat!("assets/", $name)),
        }
    };
}

pub const ASSETS: &[Asset] = &[
    asset!("index.html", HTML),
    asset!("app.css", CSS),
    asset!("js/app.js", JS),
    asset!("js/api.js", JS),
    asset!("js/dom.js", JS),
    asset!("js/money.js", JS),
    asset!("js/session.js", JS),
    asset!("js/limits_form.js", JS),
    asset!("js/chart.js", JS),
    asset!("js/widgets.js", JS),
    asset!("js/overview.js", JS),
    asset!("js/campaigns.js", JS),
    asset!("js/campaign.js", JS),
    asset!("js/launch.js", JS),
    asset!("js/keys.js", JS),
    asset!("js/requests.js", JS),
    asset!("js/pricing.js", JS),
    asset!("js/audit.js", JS),
];
