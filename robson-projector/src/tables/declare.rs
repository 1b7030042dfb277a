//! [`projection_table!`]: one declaration of a read-model table — its row
//! struct, key struct, and each column's Rust type and SQL type — from which
//! the [`Projection`](super::Projection) implementation (the table's
//! [`TableSpec`](super::TableSpec), its load and write statements and their
//! parameter binding, and its columns as shown by the drift check) is
//! generated.
//!
//! A macro rather than a spec type beside a hand-written struct: the
//! struct's fields, the statements' column lists and the binding of one
//! array per column must agree in name, order and type, and only a single
//! declaration makes a disagreement impossible instead of a run-time error.

/// Declares a read-model table. Syntax:
///
/// ```text
/// projection_table! {
///     /// doc
///     pub struct OrderRow = "orders_current" {
///         order_id: Uuid = "uuid",
///         fill_notional: Notional = "numeric" internal,   // not in SPEC §3.2
///     }
///     #[derive(Copy)]
///     key OrderKey { tenant_id: Uuid, order_id: Uuid }
///     upsert "(tenant_id, order_id)"                      // or: insert
/// }
/// ```
///
/// The SQL type is spelled as PostgreSQL's `format_type` spells it; the
/// schema test compares it with the migrated table.
macro_rules! projection_table {
    (
        $(#[$meta:meta])*
        pub struct $row:ident = $table:literal {
            $( $(#[$fmeta:meta])* $field:ident : $ty:ty = $sql:literal $($internal:ident)? ),+ $(,)?
        }
        $(#[$kmeta:meta])*
        key $key:ident { $( $kfield:ident : $kty:ty ),+ $(,)? }
        $write:ident $($target:literal)?
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
        pub struct $row {
            $( $(#[$fmeta])* pub $field: $ty, )+
        }

        $(#[$kmeta])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $key {
            $( pub $kfield: $kty, )+
        }

        impl $row {
            pub fn key(&self) -> $key {
                <$row as $crate::tables::Projection>::key(self)
            }
        }

        impl $crate::tables::Projection for $row {
            type Key = $key;
            const TABLE: &'static $crate::tables::TableSpec = &$crate::tables::TableSpec {
                name: $table,
                key: &[$(stringify!($kfield)),+],
                columns: &[$($crate::tables::Column {
                    name: stringify!($field),
                    sql_type: $sql,
                    nullable: <$ty as $crate::tables::SqlValue>::NULLABLE,
                    in_spec: !$crate::tables::declare::is_internal!($($internal)?),
                }),+],
                role: $crate::tables::TableRole::ReadModel,
            };

            fn key(&self) -> $key {
                $key { $($kfield: Clone::clone(&self.$kfield)),+ }
            }

            fn load_sql() -> &'static str {
                static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
                SQL.get_or_init(|| {
                    $crate::tables::sql::load(
                        $table,
                        &[$($crate::tables::declare::bound!($kfield: $kty)),+],
                        &[$($crate::tables::declare::bound!($field: $ty)),+],
                    )
                })
            }

            fn write_sql() -> &'static str {
                static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
                SQL.get_or_init(|| Self::write_sql_from(1))
            }

            fn write_sql_from(first: usize) -> String {
                $crate::tables::sql::write(
                    $table,
                    &[$(stringify!($kfield)),+],
                    &[$($crate::tables::declare::bound!($field: $ty)),+],
                    $crate::tables::declare::on_conflict!($write $($target)?),
                    first,
                )
            }

            fn bind_keys<'q>(
                keys: &'q std::collections::BTreeSet<$key>,
                query: $crate::tables::PgQuery<'q>,
            ) -> $crate::tables::PgQuery<'q> {
                query $(.bind(
                    keys.iter()
                        .map(|k| $crate::tables::SqlValue::wire(&k.$kfield))
                        .collect::<Vec<_>>()
                ))+
            }

            fn bind_rows<'q>(
                rows: &[&'q Self],
                query: $crate::tables::PgQuery<'q>,
            ) -> $crate::tables::PgQuery<'q> {
                query $(.bind(
                    rows.iter()
                        .map(|r| $crate::tables::SqlValue::wire(&r.$field))
                        .collect::<Vec<_>>()
                ))+
            }

            fn shown_columns(&self) -> Vec<(&'static str, serde_json::Value)> {
                vec![$((stringify!($field), $crate::tables::Shown::shown(&self.$field))),+]
            }
        }
    };
}

/// `internal` marks a column outside SPEC §3.2; nothing else is accepted.
macro_rules! is_internal {
    () => {
        false
    };
    (internal) => {
        true
    };
}

macro_rules! bound {
    ($name:ident : $ty:ty) => {
        $crate::tables::sql::Bound {
            name: stringify!($name),
            array: <$ty as $crate::tables::SqlValue>::ARRAY,
            nullable: <$ty as $crate::tables::SqlValue>::NULLABLE,
            select: <$ty as $crate::tables::SqlValue>::SELECT,
            insert: <$ty as $crate::tables::SqlValue>::INSERT,
        }
    };
}

macro_rules! on_conflict {
    (insert) => {
        $crate::tables::sql::OnConflict::Fail
    };
    (upsert $target:literal) => {
        $crate::tables::sql::OnConflict::Update($target)
    };
}

pub(crate) use {bound, is_internal, on_conflict, projection_table};
