//! What only the live tables know, carried into the shadow just before the
//! swap (inside the swap transaction, with the live tables locked):
//!
//! - the history of dead letters: when each failure the shadow reproduced
//!   first happened, how often, when it was resolved; and the `retried`
//!   dead letters whose retry succeeded (the log cannot reproduce those);
//! - how long a parked stream has been parked (`parked_at`);
//! - the tables' owner and privileges (a reporting role keeps its SELECT).

use sqlx::PgConnection;

use super::tables;

/// Copies the live history, owner and privileges into the shadow `schema`
/// (both names quoted).
pub(super) async fn carry_over(
    conn: &mut PgConnection,
    live: &str,
    schema: &str,
) -> Result<(), sqlx::Error> {
    let sql = format!(
        r#"
        UPDATE {schema}.projection_dead_letters AS s
           SET failed_at = l.failed_at, attempts = l.attempts, resolved_at = l.resolved_at
          FROM {live}.projection_dead_letters AS l
         WHERE l.event_id = s.event_id AND l.resolution IS NOT DISTINCT FROM s.resolution;

        INSERT INTO {schema}.projection_dead_letters
               (event_id, tenant_id, stream_key, seq, global_position, event_type, error_kind,
                error, failed_at, attempts, resolution, resolved_at)
        SELECT event_id, tenant_id, stream_key, seq, global_position, event_type, error_kind,
               error, failed_at, attempts, resolution, resolved_at
          FROM {live}.projection_dead_letters
         WHERE resolution = 'retried'
         ORDER BY dead_letter_id
        ON CONFLICT (event_id) DO NOTHING;

        UPDATE {schema}.projection_stream_progress AS s SET parked_at = l.parked_at
          FROM {live}.projection_stream_progress AS l
         WHERE l.stream_key = s.stream_key AND l.parked_seq = s.parked_seq;
        "#
    );
    sqlx::raw_sql(&sql).execute(&mut *conn).await?;
    for t in tables::ALL {
        for statement in access_statements(conn, live, schema, t.name).await? {
            sqlx::raw_sql(&statement).execute(&mut *conn).await?;
        }
    }
    Ok(())
}

/// `ALTER TABLE … OWNER TO` (when the live owner is another role) and one
/// `GRANT` per privilege of the live table, for the shadow's table. Built
/// by the server with `format(%I)`, so every name is quoted.
async fn access_statements(
    conn: &mut PgConnection,
    live: &str,
    schema: &str,
    table: &str,
) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar(
        r#"
        SELECT format('ALTER TABLE %s.%I OWNER TO %I', $2, $3, pg_get_userbyid(c.relowner))
          FROM pg_class c
         WHERE c.oid = to_regclass($1) AND c.relowner <> (SELECT oid FROM pg_roles WHERE rolname = current_user)
        UNION ALL
        SELECT format('GRANT %s ON %s.%I TO %s%s', a.privilege_type, $2, $3,
                      CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(a.grantee)) END,
                      CASE WHEN a.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END)
          FROM pg_class c CROSS JOIN LATERAL aclexplode(c.relacl) AS a
         WHERE c.oid = to_regclass($1) AND a.grantee <> c.relowner
        "#,
    )
    .bind(format!("{live}.{table}"))
    .bind(schema)
    .bind(table)
    .fetch_all(conn)
    .await
}
