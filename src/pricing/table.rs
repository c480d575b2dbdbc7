use std::collections::HashMap;
use std::ffi::OsStr;
use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};

use super::{ModelPrice, PricingError, file};

/// Every known price: each model's dated history, looked up by name or alias.
///
/// Built once at start-up (or on reload) and then only read, so it can sit behind an `ArcSwap`
/// on the hot path.
#[derive(Clone, Debug, Default)]
pub struct PriceTable {
    /// Every name and alias, to that model's entries sorted by `effective_from`.
    by_name: HashMap<String, Vec<Arc<ModelPrice>>>,
    /// Every entry once, sorted by provider, name and date, for listings.
    entries: Vec<Arc<ModelPrice>>,
}

impl PriceTable {
    /// Loads every `*.toml` file directly inside `dir` (in file-name order) into one table.
    ///
    /// # Errors
    /// An unreadable directory or file, a directory without price files (a gateway with no
    /// prices would refuse every model), any invalid file, or entries that clash across files.
    pub fn load_dir(dir: &Path) -> Result<PriceTable, PricingError> {
        let read_dir_error = |source| PricingError::ReadDir {
            dir: dir.to_path_buf(),
            source,
        };
        let mut files = Vec::new();
        for item in std::fs::read_dir(dir).map_err(read_dir_error)? {
            let path = item.map_err(read_dir_error)?.path();
            if path.extension() == Some(OsStr::new("toml")) && path.is_file() {
                files.push(path);
            }
        }
        if files.is_empty() {
            return Err(PricingError::NoFiles {
                dir: dir.to_path_buf(),
            });
        }
        files.sort();
        let mut table = PriceTable::default();
        for path in files {
            let text = std::fs::read_to_string(&path).map_err(|source| PricingError::ReadFile {
                file: path.clone(),
                source,
            })?;
            table = table.merge(Self::from_toml_str(&path.display().to_string(), &text)?)?;
        }
        Ok(table)
    }

    /// Parses the content of one price file; `source_name` names it in error messages.
    ///
    /// # Errors
    /// Invalid TOML, an unknown or missing field, an invalid price, date or tier, or a
    /// duplicate entry; the message names the file, the entry and the field.
    pub fn from_toml_str(source_name: &str, text: &str) -> Result<PriceTable, PricingError> {
        let mut table = PriceTable::default();
        for price in file::parse(source_name, text)? {
            table.insert(Arc::new(price))?;
        }
        Ok(table)
    }

    /// Combines two tables. The same (name, `effective_from`) twice is an error, and so is one
    /// name or alias used for two different models.
    ///
    /// # Errors
    /// [`PricingError::DuplicateEntry`] or [`PricingError::NameConflict`].
    pub fn merge(mut self, other: PriceTable) -> Result<PriceTable, PricingError> {
        for price in other.entries {
            self.insert(price)?;
        }
        Ok(self)
    }

    /// The entry in force for `model` at `at`: the latest one whose `effective_from` is on or
    /// before `at`'s UTC date. `None` when the model is unknown or `at` predates its first entry.
    pub fn price_at(&self, model: &str, at: DateTime<Utc>) -> Option<&ModelPrice> {
        let history = self.by_name.get(model)?;
        let day = at.date_naive();
        let in_force = history.partition_point(|price| price.effective_from <= day);
        history.get(in_force.checked_sub(1)?).map(Arc::as_ref)
    }

    /// Every entry, current and historical, sorted by provider, name and `effective_from`.
    pub fn models(&self) -> impl Iterator<Item = &ModelPrice> {
        self.entries.iter().map(Arc::as_ref)
    }

    /// Whether `model` is a known name or alias, at any date.
    pub fn contains(&self, model: &str) -> bool {
        self.by_name.contains_key(model)
    }

    /// Number of entries, history included.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn insert(&mut self, price: Arc<ModelPrice>) -> Result<(), PricingError> {
        let keys = || std::iter::once(&price.name).chain(&price.aliases);
        // Check every key before changing anything, so a failed insert leaves no trace.
        for key in keys() {
            let Some(existing) = self.by_name.get(key.as_str()) else {
                continue;
            };
            if let Some(other) = existing.iter().find(|p| p.name != price.name) {
                return Err(PricingError::NameConflict {
                    file: price.source.clone(),
                    model: price.name.clone(),
                    key: key.clone(),
                    other_model: other.name.clone(),
                    other_file: other.source.clone(),
                });
            }
            if let Some(first) = existing
                .iter()
                .find(|p| p.effective_from == price.effective_from)
            {
                return Err(PricingError::DuplicateEntry {
                    file: price.source.clone(),
                    model: price.name.clone(),
                    effective_from: price.effective_from,
                    first_file: first.source.clone(),
                });
            }
        }
        for key in keys() {
            let history = self.by_name.entry(key.clone()).or_default();
            let at = history.partition_point(|p| p.effective_from < price.effective_from);
            history.insert(at, Arc::clone(&price));
        }
        let at = self
            .entries
            .partition_point(|p| listing_order(p) < listing_order(&price));
        self.entries.insert(at, price);
        Ok(())
    }
}

fn listing_order(price: &ModelPrice) -> (&str, &str, NaiveDate) {
    (&price.provider, &price.name, price.effective_from)
}
