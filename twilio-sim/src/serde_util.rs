//! Small serde helpers shared by patch types.

use serde::{Deserialize, Deserializer};

/// Deserializes a field that distinguishes "absent" (`None`) from "explicit null" (`Some(None)`).
/// Use with `#[serde(default, deserialize_with = "double_option")]`.
pub(crate) fn double_option<'de, T, D>(de: D) -> Result<Option<Option<T>>, D::Error>
where
    T: Deserialize<'de>,
    D: Deserializer<'de>,
{
    Option::<T>::deserialize(de).map(Some)
}
