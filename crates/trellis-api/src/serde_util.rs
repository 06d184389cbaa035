//! Helpers used by the generated types to follow proto3's JSON mapping.

use serde::{Deserialize, Deserializer};

/// True when a value is its type's default; proto3 does not serialize default values.
pub fn is_default<T: Default + PartialEq>(value: &T) -> bool {
    *value == T::default()
}

/// Reads `null` (or an empty YAML value) as the type's default, as proto3 JSON does.
pub fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// The names of the members whose flag is set.
pub fn set_members(members: &[(bool, &'static str)]) -> Vec<&'static str> {
    members
        .iter()
        .filter(|(set, _)| *set)
        .map(|(_, name)| *name)
        .collect()
}
