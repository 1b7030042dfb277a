use super::*;

#[test]
fn every_key_column_is_a_declared_column_and_names_are_unique() {
    let mut names = BTreeSet::new();
    for table in ALL {
        assert!(names.insert(table.name), "{} declared twice", table.name);
        for key in table.key {
            assert!(table.column(key).is_some(), "{}.{key}", table.name);
        }
    }
    assert_eq!(ALL[0].name, "projection_stream_progress", "locked first");
    assert!(READ_MODELS.iter().all(|t| t.role == TableRole::ReadModel));
    assert_eq!(
        by_name("fills").map(|t| t.key),
        Some(&["tenant_id", "fill_id"][..])
    );
}

#[test]
fn a_nullable_key_column_matches_null_and_risk_rows_upsert_on_their_constraint() {
    let load = RiskRow::load_sql();
    assert!(load.contains("x.strategy_id IS NOT DISTINCT FROM k.strategy_id"));
    assert!(load.contains("x.tenant_id = k.tenant_id"));
    let write = RiskRow::write_sql();
    assert!(write.contains("ON CONFLICT ON CONSTRAINT risk_state_current_key DO UPDATE SET"));
    assert!(
        !write.contains("tenant_id = EXCLUDED"),
        "key columns are not updated"
    );
    assert!(write.contains("updated_at = EXCLUDED.updated_at"));
}

#[test]
fn fills_are_only_inserted_and_the_notional_travels_as_text() {
    assert!(!FillRow::write_sql().contains("ON CONFLICT"));
    assert!(OrderRow::load_sql().contains("x.fill_notional::text AS fill_notional"));
    assert!(OrderRow::write_sql().contains("u.fill_notional::numeric"));
    assert!(OrderRow::write_sql().contains("jsonb_array_elements_text(u.exchange_trade_ids)"));
    let params = OrderRow::write_sql().matches("::").count();
    assert!(params >= OrderRow::TABLE.columns.len());
}

#[test]
fn only_internal_columns_are_outside_the_spec() {
    let internal: Vec<&str> = READ_MODELS
        .iter()
        .flat_map(|t| t.columns.iter().filter(|c| !c.in_spec).map(|c| c.name))
        .collect();
    assert_eq!(internal, ["fill_notional"]);
}
