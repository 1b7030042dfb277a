//! The enumerated columns of the projection tables (side, order type, order
//! status, position side and state): their exact spellings (SPEC §3.3: enum
//! values are case-sensitive) and how they, and the text-coded fill notional,
//! are decoded from PostgreSQL.

use sqlx::postgres::{PgTypeInfo, PgValueRef};
use sqlx::{Decode, Postgres, Type};

use crate::decimal::Notional;

/// Declares a text-valued enum: `as_str`, `parse`, sqlx decoding from
/// `text`/`varchar`, and binding as text.
macro_rules! text_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vdoc])* $variant),+
        }

        impl $name {
            /// The stored spelling.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }

            /// The value spelled exactly `text`, if any.
            pub fn parse(text: &str) -> Option<Self> {
                match text {
                    $($text => Some($name::$variant),)+
                    _ => None,
                }
            }

            /// Every accepted spelling, for error messages.
            pub fn spellings() -> &'static str {
                concat!($($text, " "),+).trim_ascii_end()
            }
        }

        impl Type<Postgres> for $name {
            fn type_info() -> PgTypeInfo {
                <&str as Type<Postgres>>::type_info()
            }

            fn compatible(ty: &PgTypeInfo) -> bool {
                <&str as Type<Postgres>>::compatible(ty)
            }
        }

        impl crate::tables::SqlValue for $name {
            type Wire<'a> = &'static str;
            const ARRAY: &'static str = "text[]";

            fn wire(&self) -> &'static str {
                self.as_str()
            }
        }

        impl crate::tables::Shown for $name {
            fn shown(&self) -> serde_json::Value {
                serde_json::Value::String(self.as_str().to_owned())
            }
        }

        impl<'r> Decode<'r, Postgres> for $name {
            fn decode(value: PgValueRef<'r>) -> Result<Self, sqlx::error::BoxDynError> {
                let text = <&str as Decode<Postgres>>::decode(value)?;
                $name::parse(text)
                    .ok_or_else(|| format!("unknown {} {text:?}", stringify!($name)).into())
            }
        }
    };
}

text_enum! {
    /// An order's or fill's side.
    Side { Buy = "buy", Sell = "sell" }
}

text_enum! {
    /// `orders_current.order_type`.
    OrderType {
        Market = "market",
        Limit = "limit",
        StopLoss = "stop_loss",
        StopLossLimit = "stop_loss_limit",
    }
}

text_enum! {
    /// `orders_current.status`.
    OrderStatus {
        Submitted = "submitted",
        Acknowledged = "acknowledged",
        Partial = "partial",
        Filled = "filled",
        Canceled = "canceled",
        Rejected = "rejected",
    }
}

text_enum! {
    /// `positions_current.side`.
    PositionSide { Long = "long", Short = "short" }
}

text_enum! {
    /// `positions_current.state`.
    PositionState { Entering = "entering", Active = "active", Closed = "closed" }
}

impl OrderStatus {
    /// Statuses a fill, reject or cancel may still move the order out of.
    pub fn is_open(self) -> bool {
        matches!(
            self,
            OrderStatus::Submitted | OrderStatus::Acknowledged | OrderStatus::Partial
        )
    }
}

impl OrderType {
    /// Whether SPEC §3.1 requires a `price` for this type.
    pub fn needs_price(self) -> bool {
        matches!(self, OrderType::Limit | OrderType::StopLossLimit)
    }

    /// Whether SPEC §3.1 requires a `stop_price` for this type.
    pub fn needs_stop_price(self) -> bool {
        matches!(self, OrderType::StopLoss | OrderType::StopLossLimit)
    }
}

/// Loaded as `fill_notional::text`.
impl Type<Postgres> for Notional {
    fn type_info() -> PgTypeInfo {
        <&str as Type<Postgres>>::type_info()
    }
}

impl<'r> Decode<'r, Postgres> for Notional {
    fn decode(value: PgValueRef<'r>) -> Result<Self, sqlx::error::BoxDynError> {
        let text = <&str as Decode<Postgres>>::decode(value)?;
        Ok(Notional::from_db_text(text)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enum_values_are_case_sensitive() {
        assert_eq!(Side::parse("buy"), Some(Side::Buy));
        assert_eq!(Side::parse("BUY"), None);
        assert_eq!(
            OrderType::parse("stop_loss_limit"),
            Some(OrderType::StopLossLimit)
        );
        assert_eq!(OrderType::parse("Limit"), None);
        assert_eq!(PositionSide::parse("Long"), None);
    }

    #[test]
    fn spellings_round_trip() {
        for status in [
            "submitted",
            "acknowledged",
            "partial",
            "filled",
            "canceled",
            "rejected",
        ] {
            assert_eq!(
                OrderStatus::parse(status).map(OrderStatus::as_str),
                Some(status)
            );
        }
        assert_eq!(Side::spellings(), "buy sell");
    }

    #[test]
    fn only_submitted_acknowledged_and_partial_orders_are_open() {
        assert!(OrderStatus::Submitted.is_open());
        assert!(OrderStatus::Acknowledged.is_open());
        assert!(OrderStatus::Partial.is_open());
        assert!(!OrderStatus::Filled.is_open());
        assert!(!OrderStatus::Canceled.is_open());
        assert!(!OrderStatus::Rejected.is_open());
    }
}
