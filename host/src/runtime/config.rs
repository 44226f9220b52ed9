//! What the module's `init` is given (ABI.md): the keys, the mapping and the cache size, as
//! JSON. It holds the keys, so it is written where it cannot leave copies behind and wiped
//! when dropped.

use maskflow_transform::{Config, Key, Mapping};
use zeroize::Zeroizing;

/// The transform config for these keys and mapping, and its `init` JSON.
pub(crate) fn init_config(
    keys: &[Key],
    mapping: Mapping,
    cache_size: usize,
) -> (Config, Zeroizing<String>) {
    let mut config = Config::with_keys(keys.to_vec());
    config.mapping = mapping;
    config.cache_size = cache_size;
    // Written into a buffer large enough not to move while it grows (a moved buffer would
    // leave a copy of the keys behind, unwiped), then wiped when dropped.
    let mut json = Zeroizing::new(Vec::with_capacity(64 << 10));
    serde_json::to_writer(&mut *json, &config).expect("config serialises");
    let json = String::from_utf8(std::mem::take(&mut *json)).expect("serde_json writes UTF-8");
    (config, Zeroizing::new(json))
}
