//! The parameter names a module's parser accepts, read from serde's own
//! derive rather than restated by hand.
//!
//! schemars reads `rename`, `default` and the `///` docs but drops
//! `alias`. The names are still in the derived `Deserialize`: serde hands
//! every accepted name (aliases included) to `Deserializer::deserialize_struct`
//! as `fields`, and it reports a key given twice as "duplicate field
//! `<canonical name>`". This module drives the derived code with two small
//! deserializers to read both facts back, so the aliases `herd doc` shows
//! are the ones the parser takes.

use std::cell::Cell;
use std::fmt;

use indexmap::IndexMap;
use serde::de::{self, DeserializeOwned, IntoDeserializer, Visitor};

/// A probe's error: serde's message, or the field list it offered.
#[derive(Debug)]
enum Probe {
    Msg(String),
    Fields(&'static [&'static str]),
}

impl fmt::Display for Probe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Probe::Msg(m) => f.write_str(m),
            Probe::Fields(names) => write!(f, "fields {names:?}"),
        }
    }
}

impl std::error::Error for Probe {}

impl de::Error for Probe {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Probe::Msg(msg.to_string())
    }
}

/// Every name the parser of `P` accepts, mapped to the field's own name
/// (a field's own name maps to itself). Empty when `P` is not a plain
/// struct (serde passes no field list then).
pub fn accepted_names<P: DeserializeOwned>() -> IndexMap<String, String> {
    let mut names = IndexMap::new();
    for &name in fields::<P>() {
        if let Some(own) = canonical_of::<P>(name) {
            names.insert(name.to_string(), own);
        }
    }
    names
}

/// The names each enumeration parameter accepts (its variants and their
/// aliases, as serde's derive lists them), by the field's own name.
pub fn accepted_values<P: DeserializeOwned>() -> IndexMap<String, Vec<&'static str>> {
    let mut values = IndexMap::new();
    for &name in fields::<P>() {
        let seen = Cell::new(None);
        let _ = P::deserialize(TwiceMap {
            key: name,
            left: 0,
            seen: &seen,
        });
        if let (Some(variants), Some(own)) = (seen.get(), canonical_of::<P>(name)) {
            if own == name {
                values.insert(own, variants.to_vec());
            }
        }
    }
    values
}

/// serde's field list for `P` (every accepted name); empty for a type
/// that is not a plain struct.
fn fields<P: DeserializeOwned>() -> &'static [&'static str] {
    match P::deserialize(FieldList) {
        Err(Probe::Fields(fields)) => fields,
        _ => &[],
    }
}

/// The field's own name for `name`: serde names it when the key comes twice.
fn canonical_of<P: DeserializeOwned>(name: &'static str) -> Option<String> {
    let seen = Cell::new(None);
    let probe = TwiceMap {
        key: name,
        left: 0,
        seen: &seen,
    };
    let Err(Probe::Msg(err)) = P::deserialize(probe) else {
        return None;
    };
    let own = err.strip_prefix("duplicate field `")?.strip_suffix('`')?;
    Some(own.to_string())
}

/// A deserializer that only records the field list serde offers.
struct FieldList;

impl<'de> de::Deserializer<'de> for FieldList {
    type Error = Probe;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Probe> {
        Err(Probe::Msg("not a struct".into()))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Probe> {
        Err(Probe::Fields(fields))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map enum identifier ignored_any
    }
}

/// A map that gives `key` twice, each time with a value that takes any
/// shape the field asks for ([`Anything`]), so serde gets to see the repeat.
struct TwiceMap<'a> {
    key: &'static str,
    left: u8,
    /// The variants of the first enumeration a value was asked to be.
    seen: &'a Cell<Option<&'static [&'static str]>>,
}

impl<'de> de::Deserializer<'de> for TwiceMap<'_> {
    type Error = Probe;

    fn deserialize_any<V: Visitor<'de>>(mut self, visitor: V) -> Result<V::Value, Probe> {
        self.left = 2;
        visitor.visit_map(self)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map struct enum identifier ignored_any
    }
}

impl<'de> de::MapAccess<'de> for TwiceMap<'_> {
    type Error = Probe;

    fn next_key_seed<K: de::DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Probe> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        seed.deserialize(self.key.into_deserializer()).map(Some)
    }

    fn next_value_seed<V: de::DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Probe> {
        seed.deserialize(Anything { seen: self.seen })
    }
}

/// A value that becomes whatever the field asks for: `"0"` for a string
/// or a loose `Value`, `false`, `0`, some value, a one-item list, the
/// first variant of an enum (whose variant list it records).
#[derive(Clone, Copy)]
struct Anything<'a> {
    seen: &'a Cell<Option<&'static [&'static str]>>,
}

impl<'de> de::Deserializer<'de> for Anything<'_> {
    type Error = Probe;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Probe> {
        visitor.visit_str("0")
    }
    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Probe> {
        visitor.visit_bool(false)
    }
    fn deserialize_u64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Probe> {
        visitor.visit_u64(0)
    }
    fn deserialize_i64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Probe> {
        visitor.visit_i64(0)
    }
    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Probe> {
        visitor.visit_f64(0.0)
    }
    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Probe> {
        visitor.visit_some(self)
    }
    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Probe> {
        visitor.visit_seq(OneItem(Some(self)))
    }
    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Probe> {
        visitor.visit_map(de::value::MapDeserializer::<
            std::iter::Empty<(u8, u8)>,
            Probe,
        >::new(std::iter::empty()))
    }
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Probe> {
        if self.seen.get().is_none() {
            self.seen.set(Some(variants));
        }
        let first = variants.first().copied().unwrap_or("");
        visitor.visit_enum(de::value::StrDeserializer::<Probe>::new(first))
    }

    zero_for! { deserialize_i8 deserialize_i16 deserialize_i32 deserialize_u8 deserialize_u16
    deserialize_u32 deserialize_i128 deserialize_u128 }
    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Probe> {
        visitor.visit_f64(0.0)
    }

    serde::forward_to_deserialize_any! {
        char str string bytes byte_buf unit unit_struct newtype_struct tuple
        tuple_struct struct identifier ignored_any
    }
}

/// Integer requests of every width get `0`.
macro_rules! zero_for {
    ($($method:ident)*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Probe> {
            visitor.visit_u64(0)
        }
    )*};
}
use zero_for;

/// A list of one [`Anything`].
struct OneItem<'a>(Option<Anything<'a>>);

impl<'de> de::SeqAccess<'de> for OneItem<'_> {
    type Error = Probe;

    fn next_element_seed<T: de::DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Probe> {
        self.0.take().map(|a| seed.deserialize(a)).transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct P {
        #[serde(alias = "key", alias = "zzz")]
        name: String,
        #[serde(
            alias = "val",
            default,
            deserialize_with = "crate::params::de_opt_string"
        )]
        value: Option<String>,
        #[serde(rename = "use", alias = "strategy")]
        use_: Option<u32>,
        #[serde(default, deserialize_with = "crate::params::de_bool")]
        flag: bool,
    }

    #[test]
    fn aliases_map_to_their_own_field() {
        let names = accepted_names::<P>();
        let pairs: Vec<(&str, &str)> = names
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .collect();
        assert_eq!(
            pairs,
            [
                ("key", "name"),
                ("name", "name"),
                ("zzz", "name"),
                ("val", "value"),
                ("value", "value"),
                ("strategy", "use"),
                ("use", "use"),
                ("flag", "flag"),
            ]
        );
    }

    #[derive(Deserialize)]
    #[serde(rename_all = "lowercase")]
    #[allow(dead_code)]
    enum State {
        #[serde(alias = "installed")]
        Present,
        Absent,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct WithState {
        name: String,
        state: Option<State>,
        states: Vec<State>,
    }

    #[test]
    fn enumerations_list_their_aliases_too() {
        let values = accepted_values::<WithState>();
        assert_eq!(
            values.get("state").map(Vec::as_slice),
            Some(&["installed", "present", "absent"][..])
        );
        assert_eq!(values.get("states"), values.get("state"));
        assert!(!values.contains_key("name"));
    }

    #[test]
    fn not_a_struct_has_no_names() {
        assert!(accepted_names::<String>().is_empty());
    }
}
