//! Virtual keys: the secret format, the policy the data plane enforces, the set of keys that
//! exist and the cache of their policies.

mod cache;
mod known;
mod policy;
mod token;

pub use cache::{KeyCache, KeyLookupError};
pub use known::{KnownKeys, RefreshConfig, RefreshFailed};
pub use policy::{KeyPolicy, KeyRefusal};
pub use token::{KEY_PREFIX, KEY_SHAPE, KeyHash, Malformed, NewKey, check_shape};
