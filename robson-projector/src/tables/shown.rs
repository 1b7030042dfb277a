//! How a column's value is shown to an operator and compared by what it
//! means, for the drift check's reports: decimals by value (`0` and
//! `0.00000000` are equal) and normalised, timestamps in RFC 3339 with
//! microseconds, ids hyphenated, enums in their stored spelling (their impl
//! is in `enums`), lists as JSON arrays, null for an absent value.

use chrono::{DateTime, SecondsFormat, Utc};
use rust_decimal::Decimal;
use serde_json::Value;
use uuid::Uuid;

use crate::decimal::Notional;

/// A column's value as it is compared and shown.
pub trait Shown {
    fn shown(&self) -> Value;
}

impl Shown for Uuid {
    fn shown(&self) -> Value {
        Value::String(self.to_string())
    }
}

impl Shown for String {
    fn shown(&self) -> Value {
        Value::String(self.clone())
    }
}

impl Shown for Decimal {
    fn shown(&self) -> Value {
        Value::String(self.normalize().to_string())
    }
}

impl Shown for Notional {
    fn shown(&self) -> Value {
        let text = self.to_db_text();
        let trimmed = text.trim_end_matches('0').trim_end_matches('.');
        Value::String(trimmed.to_owned())
    }
}

impl Shown for DateTime<Utc> {
    fn shown(&self) -> Value {
        Value::String(self.to_rfc3339_opts(SecondsFormat::Micros, true))
    }
}

impl Shown for bool {
    fn shown(&self) -> Value {
        Value::Bool(*self)
    }
}

impl Shown for i64 {
    fn shown(&self) -> Value {
        Value::from(*self)
    }
}

impl Shown for Value {
    fn shown(&self) -> Value {
        self.clone()
    }
}

impl Shown for Vec<String> {
    fn shown(&self) -> Value {
        Value::from(self.clone())
    }
}

impl<T: Shown> Shown for Option<T> {
    fn shown(&self) -> Value {
        self.as_ref().map_or(Value::Null, Shown::shown)
    }
}
