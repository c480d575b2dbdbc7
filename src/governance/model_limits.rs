//! Limits a scope puts on one model, or one group of models, inside its own: "experiment
//! gsm8k: $500 in total, of which gpt-5 at most $100". A request for a matching model is
//! admitted against both the scope's limits and these, in the same admission call; requests
//! for other models never touch them.

use serde::{Deserialize, Serialize};

use super::limits::Budget;

/// The most model limits one scope may carry: each matching one adds its counters to the
/// admission of every request for that model.
pub const MAX_MODEL_LIMITS: usize = 32;

/// Longest model selector: as long as a model name the ledger keeps.
pub const MAX_SELECTOR_LEN: usize = 256;

/// One scope's limits on the requests for one model, or for a group of models.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ModelLimits {
    /// The model as clients name it (`gpt-5`), or a group: a prefix ending in `*`
    /// (`claude-*` is every model whose name starts with `claude-`).
    pub model: String,
    pub rpm: Option<u32>,
    pub tpm: Option<u64>,
    #[serde(default)]
    pub budgets: Vec<Budget>,
}

impl ModelLimits {
    /// Whether a request for `model` (the name the client sent) counts against these limits.
    pub fn matches(&self, model: &str) -> bool {
        selector_matches(&self.model, model)
    }

    pub fn is_empty(&self) -> bool {
        self.rpm.is_none() && self.tpm.is_none() && self.budgets.is_empty()
    }
}

/// `gpt-5` matches only `gpt-5`; `gpt-5*` matches `gpt-5`, `gpt-5-mini`, ... The ledger's
/// reads apply the same rule in SQL: `tollgate_model_matches` (migrations/0017).
pub fn selector_matches(selector: &str, model: &str) -> bool {
    match selector.strip_suffix('*') {
        Some(prefix) => model.starts_with(prefix),
        None => model == selector,
    }
}

/// Why `selector` cannot name a model or group of models, as a sentence; `None` if it can.
/// The characters are those of model names, and the selector becomes part of Redis key names
/// (so no braces, which would change a key's cluster slot, and no spaces).
pub fn selector_problem(selector: &str) -> Option<String> {
    let name = selector.strip_suffix('*').unwrap_or(selector);
    if name.is_empty() {
        return Some(format!(
            "model {selector:?} names no model: give a model name (`gpt-5`) or a prefix ending in `*` (`gpt-5*`)"
        ));
    }
    if selector.len() > MAX_SELECTOR_LEN {
        return Some(format!(
            "model {:?}… is longer than {MAX_SELECTOR_LEN} bytes",
            selector.chars().take(32).collect::<String>()
        ));
    }
    let allowed =
        |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':' | '/' | '@');
    if let Some(bad) = name.chars().find(|c| !allowed(*c)) {
        return Some(format!(
            "model {selector:?} has {bad:?}: a model name has letters, digits and - _ . : / @, and a group ends in a single `*`"
        ));
    }
    None
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn an_exact_name_matches_itself_and_a_group_its_prefix() {
        assert!(selector_matches("gpt-5", "gpt-5"));
        assert!(!selector_matches("gpt-5", "gpt-5-mini"));
        assert!(!selector_matches("gpt-5", "GPT-5"));
        assert!(selector_matches("gpt-5*", "gpt-5"));
        assert!(selector_matches("gpt-5*", "gpt-5-mini"));
        assert!(!selector_matches("gpt-5*", "gpt-4o"));
    }

    #[test]
    fn selectors_are_model_names_or_prefixes() {
        for good in ["gpt-5", "claude-*", "meta-llama/Llama-3.1-8B", "a@b:c_d.e"] {
            assert_eq!(selector_problem(good), None, "{good}");
        }
        assert!(selector_problem("*").unwrap().contains("names no model"));
        assert!(selector_problem("").unwrap().contains("names no model"));
        assert!(selector_problem("gpt-*-mini").unwrap().contains("'*'"));
        assert!(selector_problem("a{b}").unwrap().contains("'{'"));
        assert!(selector_problem("gpt 5").unwrap().contains("' '"));
        assert!(selector_problem("gpt-5**").is_some());
        let long = "m".repeat(MAX_SELECTOR_LEN + 1);
        assert!(selector_problem(&long).unwrap().contains("longer than"));
    }

    proptest! {
        #![proptest_config(crate::test_support::cases(512))]

        #[test]
        fn a_group_matches_exactly_the_names_it_prefixes(prefix in "[a-z0-9-]{1,8}", model in "[a-z0-9-]{0,12}") {
            let group = format!("{prefix}*");
            prop_assert_eq!(selector_matches(&group, &model), model.starts_with(&prefix));
            prop_assert_eq!(selector_matches(&prefix, &model), model == prefix);
        }
    }
}
