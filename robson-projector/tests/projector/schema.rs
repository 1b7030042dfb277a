//! The table declarations (`robson_projector::tables`) against the schema
//! the migrations create: every column's name, type, nullability and
//! position, every table's key, and every generated statement prepared by
//! the server.

use robson_projector::rows::{BalanceRow, FillRow, OrderRow, PositionRow, RiskRow, StrategyRow};
use robson_projector::tables::{self, Projection};
use robson_projector::testing::TestDb;
use sqlx::Executor;

#[tokio::test]
#[ignore = "needs PostgreSQL"]
async fn every_declared_column_and_key_matches_the_migrated_schema() {
    let db = TestDb::new().await;
    for table in tables::ALL {
        let live: Vec<(String, String, bool)> = sqlx::query_as(
            r#"
            SELECT attname::text, format_type(atttypid, atttypmod), NOT attnotnull
              FROM pg_attribute
             WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped
             ORDER BY attnum
            "#,
        )
        .bind(table.name)
        .fetch_all(&db.pool)
        .await
        .expect("read the columns");
        let declared: Vec<(String, String, bool)> = table
            .columns
            .iter()
            .map(|c| (c.name.to_owned(), c.sql_type.to_owned(), c.nullable))
            .collect();
        assert_eq!(
            declared, live,
            "{}: (name, type, nullable) in order",
            table.name
        );

        // The key is the column list of a unique index (primary key or
        // unique constraint), in order.
        let keys: Vec<Vec<String>> = sqlx::query_scalar(
            r#"
            SELECT array_agg(a.attname::text ORDER BY k.n)
              FROM pg_index i
             CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, n)
              JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
             WHERE i.indrelid = to_regclass($1) AND i.indisunique
             GROUP BY i.indexrelid
            "#,
        )
        .bind(table.name)
        .fetch_all(&db.pool)
        .await
        .expect("read the unique indexes");
        let key: Vec<String> = table.key.iter().map(|k| k.to_string()).collect();
        assert!(
            keys.contains(&key),
            "{}: key {key:?} not among {keys:?}",
            table.name
        );
    }
}

#[tokio::test]
#[ignore = "needs PostgreSQL"]
async fn every_generated_statement_is_accepted_by_the_server() {
    let db = TestDb::new().await;
    let statements = [
        (
            OrderRow::TABLE.name,
            OrderRow::load_sql(),
            OrderRow::write_sql(),
        ),
        (
            FillRow::TABLE.name,
            FillRow::load_sql(),
            FillRow::write_sql(),
        ),
        (
            PositionRow::TABLE.name,
            PositionRow::load_sql(),
            PositionRow::write_sql(),
        ),
        (
            BalanceRow::TABLE.name,
            BalanceRow::load_sql(),
            BalanceRow::write_sql(),
        ),
        (
            RiskRow::TABLE.name,
            RiskRow::load_sql(),
            RiskRow::write_sql(),
        ),
        (
            StrategyRow::TABLE.name,
            StrategyRow::load_sql(),
            StrategyRow::write_sql(),
        ),
    ];
    assert_eq!(statements.len(), tables::READ_MODELS.len());
    for (table, load, write) in statements {
        let spec = tables::by_name(table).expect("declared");
        let described = (&db.pool)
            .describe(load)
            .await
            .unwrap_or_else(|e| panic!("{table} load: {e}"));
        assert_eq!(
            described.columns().len(),
            spec.columns.len(),
            "{table}: every column loaded"
        );
        (&db.pool)
            .describe(write)
            .await
            .unwrap_or_else(|e| panic!("{table} write: {e}"));
    }
}
