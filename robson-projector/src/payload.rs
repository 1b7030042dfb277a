//! Reading payload fields (SPEC §3.0, §3.3): required and optional uuids,
//! strings, decimals, booleans, timestamps and JSON objects, where JSON `null`
//! means absent. Every failure is an [`ProjectionError::InvalidPayload`]
//! naming the field. What the fields mean belongs to `rules`.

use chrono::{DateTime, SubsecRound, Utc};
use rust_decimal::Decimal;
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::decimal;
use crate::error::ProjectionError;

/// The fields of one event's payload (a JSON object).
#[derive(Debug, Clone, Copy)]
pub struct Fields<'a> {
    object: &'a Map<String, Value>,
}

type Result<T> = std::result::Result<T, ProjectionError>;

fn invalid(field: &str, problem: impl std::fmt::Display) -> ProjectionError {
    ProjectionError::InvalidPayload(format!("{field}: {problem}"))
}

impl<'a> Fields<'a> {
    /// The payload's fields; a payload that is not a JSON object is invalid.
    pub fn of(payload: &'a Value) -> Result<Self> {
        match payload {
            Value::Object(object) => Ok(Fields { object }),
            _ => Err(ProjectionError::InvalidPayload(
                "payload is not a JSON object".into(),
            )),
        }
    }

    /// The field's value; absent and `null` are the same.
    fn get(&self, field: &str) -> Option<&'a Value> {
        self.object.get(field).filter(|v| !v.is_null())
    }

    fn required<T>(&self, field: &str, read: impl Fn(&'a Value) -> Result<T>) -> Result<T> {
        match self.get(field) {
            Some(value) => read(value),
            None => Err(invalid(field, "required")),
        }
    }

    fn optional<T>(&self, field: &str, read: impl Fn(&'a Value) -> Result<T>) -> Result<Option<T>> {
        self.get(field).map(read).transpose()
    }

    /// A required hyphenated UUID string.
    pub fn uuid(&self, field: &str) -> Result<Uuid> {
        self.required(field, |v| read_uuid(field, v))
    }

    /// An optional hyphenated UUID string.
    pub fn opt_uuid(&self, field: &str) -> Result<Option<Uuid>> {
        self.optional(field, |v| read_uuid(field, v))
    }

    /// A required string.
    pub fn string(&self, field: &str) -> Result<&'a str> {
        self.required(field, |v| read_str(field, v))
    }

    /// An optional string.
    pub fn opt_string(&self, field: &str) -> Result<Option<&'a str>> {
        self.optional(field, |v| read_str(field, v))
    }

    /// A required decimal (JSON string or number), see [`decimal`].
    pub fn decimal(&self, field: &str) -> Result<Decimal> {
        self.required(field, |v| read_decimal(field, v))
    }

    /// An optional decimal (JSON string or number).
    pub fn opt_decimal(&self, field: &str) -> Result<Option<Decimal>> {
        self.optional(field, |v| read_decimal(field, v))
    }

    /// An optional boolean.
    pub fn opt_bool(&self, field: &str) -> Result<Option<bool>> {
        self.optional(field, |v| {
            v.as_bool().ok_or_else(|| invalid(field, "not a boolean"))
        })
    }

    /// An optional RFC 3339 timestamp with `T` and an offset, in UTC, rounded
    /// to microseconds (what `timestamptz` stores).
    pub fn opt_timestamp(&self, field: &str) -> Result<Option<DateTime<Utc>>> {
        self.optional(field, |v| read_timestamp(field, v))
    }

    /// A required JSON object, returned as given.
    pub fn object(&self, field: &str) -> Result<Value> {
        self.required(field, |v| read_object(field, v))
    }

    /// An optional JSON object, returned as given.
    pub fn opt_object(&self, field: &str) -> Result<Option<Value>> {
        self.optional(field, |v| read_object(field, v))
    }

    /// Checks that an optional field, when present, is a JSON array.
    pub fn opt_array(&self, field: &str) -> Result<()> {
        self.optional(field, |v| match v {
            Value::Array(_) => Ok(()),
            _ => Err(invalid(field, "not an array")),
        })
        .map(|_| ())
    }
}

fn read_str<'a>(field: &str, value: &'a Value) -> Result<&'a str> {
    value.as_str().ok_or_else(|| invalid(field, "not a string"))
}

fn read_uuid(field: &str, value: &Value) -> Result<Uuid> {
    let text = read_str(field, value)?;
    // Only the hyphenated form (36 characters); `Uuid::parse_str` would also
    // take the simple, braced and URN forms.
    if text.len() != 36 {
        return Err(invalid(field, format!("{text:?} is not a hyphenated UUID")));
    }
    Uuid::parse_str(text).map_err(|_| invalid(field, format!("{text:?} is not a hyphenated UUID")))
}

fn read_decimal(field: &str, value: &Value) -> Result<Decimal> {
    let parsed = match value {
        Value::String(text) => decimal::parse_string(text),
        // With serde_json's `arbitrary_precision`, a number keeps its literal.
        Value::Number(number) => decimal::parse_number(number.as_str()),
        _ => Err("not a decimal string or number".to_string()),
    };
    parsed.map_err(|problem| invalid(field, problem))
}

fn read_timestamp(field: &str, value: &Value) -> Result<DateTime<Utc>> {
    let text = read_str(field, value)?;
    let bad = || {
        invalid(
            field,
            format!("{text:?} is not an RFC 3339 timestamp with T and an offset"),
        )
    };
    if text.as_bytes().get(10) != Some(&b'T') {
        return Err(bad());
    }
    let parsed = DateTime::parse_from_rfc3339(text).map_err(|_| bad())?;
    Ok(parsed.with_timezone(&Utc).round_subsecs(6))
}

fn read_object(field: &str, value: &Value) -> Result<Value> {
    match value {
        Value::Object(_) => Ok(value.clone()),
        _ => Err(invalid(field, "not a JSON object")),
    }
}

#[cfg(test)]
mod tests;
