//! How a Rust field type travels to and from its column: the array type of
//! its `UNNEST` parameter, the value bound for one row, and the rare
//! expressions that convert between what is bound or decoded and what is
//! stored (the exact fill notional as text, the trade ids as a JSON array).

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde_json::Value;
use sqlx::postgres::PgHasArrayType;
use sqlx::{Encode, Postgres, Type};
use uuid::Uuid;

use crate::decimal::Notional;

/// A field type that can be written set-based: one array parameter holds
/// the column's values for every row of a statement.
pub trait SqlValue {
    /// What is bound for one row.
    type Wire<'a>: Encode<'a, Postgres> + Type<Postgres> + PgHasArrayType + Send + 'a
    where
        Self: 'a;
    /// The type of the `UNNEST` array parameter (`uuid[]`).
    const ARRAY: &'static str;
    /// Whether the column may be null.
    const NULLABLE: bool = false;
    /// How the stored column is selected so that it decodes as `Self`
    /// (`{}` stands for the qualified column).
    const SELECT: &'static str = "{}";
    /// How the unnested value becomes the stored one (`{}` as above).
    const INSERT: &'static str = "{}";

    fn wire(&self) -> Self::Wire<'_>;
}

/// Types bound as themselves.
macro_rules! bound_as_is {
    ($($ty:ty => $array:literal),+ $(,)?) => {
        $(impl SqlValue for $ty {
            type Wire<'a> = $ty;
            const ARRAY: &'static str = $array;

            fn wire(&self) -> $ty {
                *self
            }
        })+
    };
}

bound_as_is! {
    Uuid => "uuid[]",
    Decimal => "numeric[]",
    i64 => "int8[]",
    bool => "bool[]",
    DateTime<Utc> => "timestamptz[]",
}

impl SqlValue for String {
    type Wire<'a> = &'a str;
    const ARRAY: &'static str = "text[]";

    fn wire(&self) -> &str {
        self
    }
}

impl SqlValue for Value {
    type Wire<'a> = Value;
    const ARRAY: &'static str = "jsonb[]";

    fn wire(&self) -> Value {
        self.clone()
    }
}

impl<T: SqlValue> SqlValue for Option<T> {
    type Wire<'a>
        = Option<T::Wire<'a>>
    where
        T: 'a;
    const ARRAY: &'static str = T::ARRAY;
    const NULLABLE: bool = true;
    const SELECT: &'static str = T::SELECT;
    const INSERT: &'static str = T::INSERT;

    fn wire(&self) -> Self::Wire<'_> {
        self.as_ref().map(T::wire)
    }
}

/// `text[]` cannot hold rows of different lengths (a `text[][]` is
/// rectangular): each row's list travels as one JSON array and is unpacked
/// in order.
impl SqlValue for Vec<String> {
    type Wire<'a> = Value;
    const ARRAY: &'static str = "jsonb[]";
    const INSERT: &'static str = "ARRAY(SELECT t.id FROM jsonb_array_elements_text({}) \
                                  WITH ORDINALITY AS t(id, n) ORDER BY t.n)";

    fn wire(&self) -> Value {
        Value::from(self.clone())
    }
}

/// The exact notional is wider than `Decimal`: it travels as text.
impl SqlValue for Notional {
    type Wire<'a> = String;
    const ARRAY: &'static str = "text[]";
    const SELECT: &'static str = "{}::text";
    const INSERT: &'static str = "{}::numeric";

    fn wire(&self) -> String {
        self.to_db_text()
    }
}
