//! Schemas for parameters whose Rust type is not the shape a task writes:
//! a custom `deserialize_with` that takes a string or a list, say. Used as
//! `#[schemars(with = "crate::doc::shapes::StringOrList")]` on the field,
//! next to the `deserialize_with` it describes.

use std::borrow::Cow;

use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};

/// A string, or a list of strings (`volumes: all`, `volumes: [a, b]`);
/// null means none.
pub struct StringOrList;

impl JsonSchema for StringOrList {
    fn schema_name() -> Cow<'static, str> {
        "StringOrList".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "type": ["string", "array", "null"], "items": { "type": "string" } })
    }
}

/// A boolean or a mapping (`limits: true`, `limits: {nofile: 65536}`).
pub struct BoolOrMapping;

impl JsonSchema for BoolOrMapping {
    fn schema_name() -> Cow<'static, str> {
        "BoolOrMapping".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "type": ["boolean", "object", "null"] })
    }
}
