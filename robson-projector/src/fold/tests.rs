use super::*;
use crate::rows::OrderStatus;
use crate::rules::testing::*;
use robson_eventlog::EventEnvelope;

/// What the batch shell does per event (parse, then fold), for these tests.
trait FoldEvent {
    fn apply(&mut self, event: &EventEnvelope) -> Result<Applied, ProjectionError>;
    fn rows_changed(&self) -> usize;
}

impl FoldEvent for Tables {
    fn apply(&mut self, event: &EventEnvelope) -> Result<Applied, ProjectionError> {
        match crate::rules::parse_event(event)? {
            Some(command) => self.apply_command(&command, &Stamp::of(event)),
            None => Ok(Applied::Unhandled),
        }
    }

    fn rows_changed(&self) -> usize {
        self.orders.changed.len()
            + self.fills.len()
            + self.positions.changed.len()
            + self.balances.changed.len()
            + self.risks.changed.len()
            + self.strategies.changed.len()
    }
}

fn submit_event(seq: i64) -> EventEnvelope {
    event(
        "order:1",
        seq,
        "ORDER_SUBMITTED",
        json(&format!(
            r#"{{"order_id": "{ORDER}", "account_id": "{ACCOUNT}", "client_order_id": "c",
                "symbol": "BTCUSDT", "side": "buy", "order_type": "market", "quantity": "1"}}"#
        )),
    )
}

fn fill_event(seq: i64, trade: &str) -> EventEnvelope {
    event(
        "order:1",
        seq,
        "FILL_RECEIVED",
        json(&format!(
            r#"{{"order_id": "{ORDER}", "exchange_trade_id": "{trade}", "fill_price": "10",
                "fill_quantity": "0.4", "fee": "0.01", "fee_asset": "USDT"}}"#
        )),
    )
}

fn order_key() -> OrderKey {
    OrderKey {
        tenant_id: TENANT,
        order_id: uuid(ORDER),
    }
}

#[test]
fn applied_events_mark_their_rows_changed() {
    let mut tables = Tables::default();
    assert_eq!(tables.apply(&submit_event(1)).ok(), Some(Applied::Changed));
    assert_eq!(tables.orders.changed().len(), 1);
    assert_eq!(
        tables.orders.get(&order_key()).map(|o| o.status),
        Some(OrderStatus::Submitted)
    );
}

#[test]
fn loaded_rows_are_not_changed_until_an_event_touches_them() {
    let mut tables = Tables::default();
    tables.apply(&submit_event(1)).expect("submitted");
    let row = tables.orders.get(&order_key()).cloned().expect("row");
    let mut fresh = Tables::default();
    fresh.orders.load(order_key(), row);
    assert!(fresh.orders.changed().is_empty());
    fresh.apply(&fill_event(2, "T1")).expect("filled");
    assert_eq!(fresh.orders.changed().len(), 1);
    assert_eq!(fresh.fills.len(), 1);
}

#[test]
fn duplicate_fill_in_the_same_fold_changes_nothing() {
    let mut tables = Tables::default();
    tables.apply(&submit_event(1)).expect("submitted");
    tables.apply(&fill_event(2, "T1")).expect("filled");
    let before = tables.orders.get(&order_key()).cloned();
    assert_eq!(
        tables.apply(&fill_event(3, "T1")).ok(),
        Some(Applied::DuplicateFill)
    );
    assert_eq!(tables.orders.get(&order_key()).cloned(), before);
    assert_eq!(tables.fills.len(), 1);
}

#[test]
fn a_failed_event_leaves_the_tables_unchanged() {
    let mut tables = Tables::default();
    tables.apply(&submit_event(1)).expect("submitted");
    let before = tables.orders.get(&order_key()).cloned();
    assert!(is_violation(tables.apply(&submit_event(2))));
    assert!(is_violation(tables.apply(&event(
        "order:2",
        1,
        "ORDER_ACKED",
        json(r#"{"order_id": "7bd55800-1dd3-4048-8db4-255d74c6224f", "exchange_order_id": "x"}"#)
    ))));
    assert_eq!(tables.orders.get(&order_key()).cloned(), before);
    assert_eq!(tables.orders.changed().len(), 1);
}

#[test]
fn an_invalid_and_conflicting_event_is_an_invalid_payload() {
    let mut tables = Tables::default();
    tables.apply(&submit_event(1)).expect("submitted");
    let mut again = submit_event(2);
    again.payload = again.payload.map(|p| with(&p, "quantity", r#""-1""#));
    assert!(is_invalid(tables.apply(&again)));
}

#[test]
fn the_same_order_id_in_two_tenants_is_two_orders() {
    let mut tables = Tables::default();
    tables.apply(&submit_event(1)).expect("submitted");
    let mut other = submit_event(1);
    other.tenant_id = OTHER_TENANT;
    other.stream_key = "order:other".into();
    assert_eq!(tables.apply(&other).ok(), Some(Applied::Changed));
    let mut ack = event(
        "order:other",
        2,
        "ORDER_ACKED",
        json(&format!(
            r#"{{"order_id": "{ORDER}", "exchange_order_id": "X"}}"#
        )),
    );
    ack.tenant_id = OTHER_TENANT;
    tables.apply(&ack).expect("acked");
    assert_eq!(
        tables.orders.get(&order_key()).map(|o| o.status),
        Some(OrderStatus::Submitted)
    );
    let other_key = OrderKey {
        tenant_id: OTHER_TENANT,
        order_id: uuid(ORDER),
    };
    assert_eq!(
        tables.orders.get(&other_key).map(|o| o.status),
        Some(OrderStatus::Acknowledged)
    );
}

#[test]
fn unhandled_events_change_no_row() {
    let mut tables = Tables::default();
    let intent = event(
        "order:1",
        1,
        "INTENT_CREATED",
        json(r#"{"intent_id": "x"}"#),
    );
    assert_eq!(tables.apply(&intent).ok(), Some(Applied::Unhandled));
    assert_eq!(tables.rows_changed(), 0);
}

#[test]
fn keys_cover_the_row_each_command_targets() {
    let mut keys = Keys::default();
    let submit = submit_event(1);
    let command = crate::rules::parse_event(&submit)
        .ok()
        .flatten()
        .expect("command");
    keys.add(&command, TENANT);
    assert_eq!(keys.orders.iter().next(), Some(&order_key()));
}

/// Every row of `tables` marked changed, as [`RowKey`]s (fills apart).
fn changed_keys(tables: &Tables) -> Vec<RowKey> {
    let mut keys: Vec<RowKey> = Vec::new();
    keys.extend(tables.orders.changed.iter().map(|k| RowKey::from(*k)));
    keys.extend(tables.positions.changed.iter().map(|k| RowKey::from(*k)));
    keys.extend(tables.balances.changed.iter().cloned().map(RowKey::from));
    keys.extend(tables.risks.changed.iter().map(|k| RowKey::from(*k)));
    keys.extend(tables.strategies.changed.iter().map(|k| RowKey::from(*k)));
    keys
}

/// What `Keys::add` loads for a command is what its rule changes: over
/// every event of the trading fixtures (all twelve handled types, in their
/// order, applied to the rows the earlier ones left), each accepted command
/// changes exactly the one row `row_key` names, and a fill adds its fill
/// to that order.
#[test]
fn the_row_a_command_changes_is_the_row_its_key_names() {
    let mut tables = Tables::default();
    let mut seen = BTreeSet::new();
    for name in ["trading-small", "trading-medium"] {
        let path = format!(
            "{}/tests/fixtures/{name}/events.jsonl",
            env!("CARGO_MANIFEST_DIR")
        );
        let text = std::fs::read_to_string(&path).expect("fixture");
        for (seq, line) in text.lines().enumerate() {
            let request: serde_json::Value = serde_json::from_str(line).expect("json");
            let event_type = request["event_type"].as_str().expect("event_type");
            let tenant_id: Uuid = request["tenant_id"]
                .as_str()
                .expect("tenant")
                .parse()
                .expect("uuid");
            let Ok(Some(command)) = crate::rules::parse(event_type, &request["payload"], tenant_id)
            else {
                continue;
            };
            let stamp = Stamp {
                tenant_id,
                ..stamp(seq as i64 + 1)
            };
            tables.orders.changed.clear();
            tables.positions.changed.clear();
            tables.balances.changed.clear();
            tables.risks.changed.clear();
            tables.strategies.changed.clear();
            let fills = tables.fills.len();
            match tables.apply_command(&command, &stamp) {
                Ok(Applied::Changed) => {
                    assert_eq!(
                        changed_keys(&tables),
                        [command.row_key(tenant_id)],
                        "{event_type} at line {} of {name}",
                        seq + 1
                    );
                    let added = usize::from(matches!(command, Command::FillReceived(_)));
                    assert_eq!(tables.fills.len(), fills + added, "{event_type}");
                    seen.insert(event_type.to_owned());
                }
                Ok(_) | Err(_) => assert!(changed_keys(&tables).is_empty(), "{event_type}"),
            }
        }
    }
    assert_eq!(
        seen.len(),
        12,
        "every handled type applied at least once: {seen:?}"
    );
}

#[test]
fn an_event_whose_payload_could_not_be_decoded_is_an_invalid_payload() {
    let mut tables = Tables::default();
    let mut huge = submit_event(1);
    huge.payload = Err(robson_eventlog::PayloadError::TooLarge {
        bytes: 5_000_000,
        limit: 1_048_576,
    });
    assert!(is_invalid(tables.apply(&huge)));
    let mut deep = event("signal:1", 1, "DECISION_PROPOSED", json("{}"));
    deep.payload = Err(robson_eventlog::PayloadError::TooDeep { limit: 64 });
    assert!(is_invalid(tables.apply(&deep)), "unhandled types too");
    assert_eq!(tables.rows_changed(), 0);
}
