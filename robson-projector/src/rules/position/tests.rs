use super::*;
use crate::rules::testing::*;

fn open_payload(side: &str, entry: &str, stop: &str, distance: &str) -> serde_json::Value {
    json(&format!(
        r#"{{"position_id": "{POSITION}", "account_id": "{ACCOUNT}", "symbol": "ETHUSDT",
            "side": "{side}", "entry_price": "{entry}", "entry_quantity": "0.0735",
            "technical_stop_price": "{stop}", "technical_stop_distance": "{distance}"}}"#
    ))
}

fn parse_open(payload: &serde_json::Value) -> Result<Open> {
    Open::parse(&fields(payload))
}

fn open_with(payload: &serde_json::Value) -> Result<PositionRow> {
    open(None, &parse_open(payload)?, &stamp(1))
}

fn opened() -> PositionRow {
    open_with(&open_payload("long", "100", "95", "5")).expect("valid position")
}

#[test]
fn position_with_entry_price_and_quantity_is_active() {
    let row = opened();
    assert_eq!(row.state, PositionState::Active);
    assert_eq!(row.current_quantity, dec("0.0735"));
    assert_eq!(row.trailing_stop_price, Some(dec("95")));
    assert_eq!(
        (row.realized_pnl, row.total_fees),
        (Decimal::ZERO, Decimal::ZERO)
    );
    assert_eq!(row.entry_filled_at, None);
    assert_eq!(
        (row.created_at, row.updated_at, row.last_seq),
        (at(1), at(1), 1)
    );
}

#[test]
fn position_without_entry_is_entering_with_no_quantity() {
    let payload = without(
        &without(&open_payload("long", "100", "95", "5"), "entry_price"),
        "entry_quantity",
    );
    let row = open_with(&payload).expect("valid");
    assert_eq!(row.state, PositionState::Entering);
    assert_eq!(row.current_quantity, Decimal::ZERO);
    let price_only = without(&open_payload("long", "100", "95", "5"), "entry_quantity");
    assert_eq!(
        open_with(&price_only).map(|r| r.state).ok(),
        Some(PositionState::Entering)
    );
}

#[test]
fn golden_rule_missing_stop_fields_are_invalid_payloads() {
    let payload = open_payload("long", "100", "95", "5");
    assert!(is_invalid(parse_open(&without(
        &payload,
        "technical_stop_price"
    ))));
    assert!(is_invalid(parse_open(&without(
        &payload,
        "technical_stop_distance"
    ))));
    assert!(is_invalid(parse_open(&with(
        &payload,
        "technical_stop_price",
        "null"
    ))));
}

#[test]
fn golden_rule_stop_and_distance_must_be_positive() {
    let no_entry = |stop: &str, distance: &str| {
        without(&open_payload("long", "1", stop, distance), "entry_price")
    };
    assert!(is_violation(open_with(&no_entry("0", "2.234"))));
    assert!(is_violation(open_with(&no_entry("-1", "2.234"))));
    assert!(is_violation(open_with(&no_entry("10", "0"))));
    assert!(open_with(&no_entry("10", "2.234")).is_ok());
}

#[test]
fn golden_rule_long_stop_must_be_below_the_entry() {
    assert!(is_violation(open_with(&open_payload(
        "long", "100", "105", "5"
    ))));
    assert!(is_violation(open_with(&open_payload(
        "long",
        "100",
        "100",
        "0.00000001"
    ))));
}

#[test]
fn golden_rule_entry_price_must_be_positive() {
    assert!(is_violation(open_with(&open_payload(
        "short", "0", "1", "1"
    ))));
    assert!(is_violation(open_with(&open_payload(
        "short", "-5", "1", "6"
    ))));
}

#[test]
fn golden_rule_short_stop_must_be_above_the_entry() {
    assert!(open_with(&open_payload("short", "3366.29", "3385.48", "19.19")).is_ok());
    assert!(is_violation(open_with(&open_payload(
        "short", "100", "95", "5"
    ))));
    assert!(is_violation(open_with(&open_payload(
        "short", "100", "100", "1"
    ))));
}

#[test]
fn golden_rule_distance_must_equal_entry_minus_stop_exactly() {
    assert!(is_violation(open_with(&open_payload(
        "short", "0.6182", "0.6373", "0.0291"
    ))));
    assert!(is_violation(open_with(&open_payload(
        "long",
        "100",
        "95",
        "5.00000001"
    ))));
    assert!(open_with(&open_payload("long", "100", "95", "5.000")).is_ok());
}

#[test]
fn open_payload_fields_are_validated() {
    let payload = open_payload("long", "100", "95", "5");
    assert!(is_invalid(parse_open(&with(&payload, "side", r#""buy""#))));
    assert!(is_invalid(parse_open(&with(&payload, "side", r#""LONG""#))));
    assert!(is_invalid(parse_open(&with(
        &payload, "symbol", r#""eth""#
    ))));
    assert!(is_invalid(parse_open(&with(
        &payload,
        "entry_quantity",
        "0"
    ))));
    assert!(is_invalid(parse_open(&with(
        &payload,
        "entry_price",
        "1.000000001"
    ))));
    assert!(is_invalid(parse_open(&with(&payload, "strategy_id", "1"))));
    assert!(is_invalid(parse_open(&with(
        &payload,
        "entry_filled_at",
        r#""yesterday""#
    ))));
    for field in ["position_id", "account_id", "symbol", "side"] {
        assert!(is_invalid(parse_open(&without(&payload, field))), "{field}");
    }
}

#[test]
fn opening_an_existing_position_is_an_invariant_violation() {
    let cmd = parse_open(&open_payload("long", "100", "95", "5")).expect("valid");
    assert!(is_violation(open(Some(&opened()), &cmd, &stamp(2))));
}

#[test]
fn close_sets_closed_state_and_zero_quantity() {
    let cmd = Close {
        position_id: uuid(POSITION),
        exit_order_id: None,
        closed_at: None,
        realized_pnl: Some(dec("-12.5")),
    };
    let row = close(Some(&opened()), &cmd, &stamp(4)).expect("closed");
    assert_eq!(row.state, PositionState::Closed);
    assert_eq!(row.closed_at, Some(at(4)));
    assert_eq!(row.current_quantity, Decimal::ZERO);
    assert_eq!(row.realized_pnl, dec("-12.5"));
    assert_eq!(row.exit_order_id, None);
    assert_eq!(
        (row.last_seq, row.updated_at, row.created_at),
        (4, at(4), at(1))
    );
}

#[test]
fn close_keeps_realized_pnl_when_absent_and_takes_payload_values() {
    let before = PositionRow {
        realized_pnl: dec("7"),
        exit_order_id: Some(uuid(ORDER)),
        ..opened()
    };
    let payload = json(&format!(
        r#"{{"position_id": "{POSITION}", "closed_at": "2024-03-01T08:00:06.438Z", "exit_reason": "manual"}}"#
    ));
    let cmd = Close::parse(&fields(&payload)).expect("valid");
    let row = close(Some(&before), &cmd, &stamp(5)).expect("closed");
    assert_eq!(row.realized_pnl, dec("7"));
    assert_eq!(row.exit_order_id, None);
    assert_eq!(row.closed_at, Some(ts("2024-03-01T08:00:06.438Z")));
}

#[test]
fn closing_a_missing_or_closed_position_is_an_invariant_violation() {
    let cmd = Close {
        position_id: uuid(POSITION),
        exit_order_id: None,
        closed_at: None,
        realized_pnl: None,
    };
    assert!(is_violation(close(None, &cmd, &stamp(2))));
    let closed = close(Some(&opened()), &cmd, &stamp(2)).expect("closed");
    assert!(is_violation(close(Some(&closed), &cmd, &stamp(3))));
}

#[test]
fn close_payload_fields_are_validated() {
    let base = json(&format!(r#"{{"position_id": "{POSITION}"}}"#));
    assert!(is_invalid(Close::parse(&fields(&with(
        &base,
        "realized_pnl",
        r#""-1.123456789""#
    )))));
    assert!(is_invalid(Close::parse(&fields(&with(
        &base,
        "exit_order_id",
        r#""x""#
    )))));
    assert!(is_invalid(Close::parse(&fields(&with(
        &base,
        "exit_reason",
        "5"
    )))));
    assert!(is_invalid(Close::parse(&fields(&json("{}")))));
}
