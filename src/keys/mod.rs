//! Virtual keys: the secret format, the policy the data plane enforces, and its cache.

mod cache;
mod policy;
mod token;

pub use cache::KeyCache;
pub use policy::{KeyPolicy, KeyRefusal};
pub use token::{KEY_PREFIX, KeyHash, NewKey};
