use super::*;
use crate::rows::{OrderStatus, OrderType};
use crate::rules::order;
use crate::rules::testing::*;

fn order_of(quantity: &str) -> OrderRow {
    let payload = json(&format!(
        r#"{{"order_id": "{ORDER}", "account_id": "{ACCOUNT}", "client_order_id": "c-1",
            "symbol": "XRPUSDT", "side": "buy", "order_type": "market", "quantity": "{quantity}"}}"#
    ));
    let cmd = order::Submit::parse(&fields(&payload)).expect("valid order");
    order::submit(None, &cmd, &stamp(1)).expect("new order")
}

fn fill_payload(trade: &str, price: &str, quantity: &str) -> serde_json::Value {
    json(&format!(
        r#"{{"order_id": "{ORDER}", "exchange_trade_id": "{trade}", "fill_price": {price},
            "fill_quantity": {quantity}, "fee": "0.1", "fee_asset": "USDT"}}"#
    ))
}

fn parse_fill(payload: &serde_json::Value) -> Result<Fill> {
    Fill::parse(&fields(payload))
}

/// Applies a fill to `order` as event `seq`.
fn apply(order: &OrderRow, payload: &serde_json::Value, seq: i64) -> (OrderRow, FillRow) {
    let cmd = parse_fill(payload).expect("valid fill");
    match fill(Some(order), &cmd, &stamp(seq)).expect("fill applies") {
        FillEffect::Recorded { order, fill } => (*order, *fill),
        FillEffect::Duplicate => panic!("unexpected duplicate"),
    }
}

#[test]
fn first_partial_fill_marks_order_partial() {
    let (row, _) = apply(
        &order_of("2"),
        &fill_payload("T1", r#""1.5""#, r#""0.5""#),
        2,
    );
    assert_eq!(row.status, OrderStatus::Partial);
    assert_eq!(row.filled_quantity, dec("0.5"));
    assert_eq!(row.total_fee, dec("0.1"));
    assert_eq!(row.fee_asset.as_deref(), Some("USDT"));
    assert_eq!(row.exchange_trade_ids, vec!["T1".to_string()]);
    assert_eq!(row.average_fill_price, Some(dec("1.5")));
    assert_eq!(row.filled_at, None);
    assert_eq!((row.last_seq, row.updated_at), (2, at(2)));
}

#[test]
fn fill_reaching_quantity_marks_order_filled() {
    let payload = with(
        &fill_payload("T1", r#""1""#, r#""2""#),
        "filled_at",
        r#""2024-03-01T10:00:04.393+02:00""#,
    );
    let (row, fill) = apply(&order_of("2"), &payload, 2);
    assert_eq!(row.status, OrderStatus::Filled);
    assert_eq!(row.filled_at, Some(ts("2024-03-01T08:00:04.393Z")));
    assert_eq!(fill.filled_at, ts("2024-03-01T08:00:04.393Z"));
}

#[test]
fn fill_beyond_quantity_marks_order_filled() {
    let (row, _) = apply(&order_of("1"), &fill_payload("T1", r#""1""#, r#""1.5""#), 2);
    assert_eq!(row.status, OrderStatus::Filled);
    assert_eq!(row.filled_quantity, dec("1.5"));
    assert_eq!(row.filled_at, Some(at(2)));
}

#[test]
fn fill_before_the_ack_moves_a_submitted_order_to_partial() {
    let before = order_of("2");
    assert_eq!(before.status, OrderStatus::Submitted);
    let (row, _) = apply(&before, &fill_payload("T1", r#""1""#, r#""1""#), 2);
    assert_eq!(row.status, OrderStatus::Partial);
}

#[test]
fn fill_on_a_final_order_updates_quantities_but_keeps_status_and_filled_at() {
    let canceled = OrderRow {
        status: OrderStatus::Canceled,
        ..order_of("2")
    };
    let (row, _) = apply(&canceled, &fill_payload("T1", r#""1""#, r#""2""#), 2);
    assert_eq!(row.status, OrderStatus::Canceled);
    assert_eq!(row.filled_quantity, dec("2"));
    assert_eq!(row.filled_at, None);

    let (filled, _) = apply(&order_of("1"), &fill_payload("T1", r#""1""#, r#""1""#), 2);
    let (after, _) = apply(&filled, &fill_payload("T2", r#""3""#, r#""1""#), 3);
    assert_eq!(after.status, OrderStatus::Filled);
    assert_eq!(after.filled_at, Some(at(2)));
    assert_eq!(after.filled_quantity, dec("2"));
    assert_eq!(after.average_fill_price, Some(dec("2")));
    assert_eq!(
        after.exchange_trade_ids,
        vec!["T1".to_string(), "T2".to_string()]
    );
}

#[test]
fn duplicate_fill_changes_nothing() {
    let (row, _) = apply(&order_of("2"), &fill_payload("T1", r#""1""#, r#""1""#), 2);
    let repeat = parse_fill(&fill_payload("T1", r#""9""#, r#""1""#)).expect("valid");
    assert_eq!(
        fill(Some(&row), &repeat, &stamp(3)).ok(),
        Some(FillEffect::Duplicate)
    );
}

#[test]
fn fill_row_takes_missing_fields_from_the_order() {
    let order = OrderRow {
        exchange_order_id: Some("EX-1".into()),
        ..order_of("2")
    };
    let (_, fill) = apply(&order, &fill_payload("T1", r#""1""#, r#""1""#), 2);
    assert_eq!(fill.fill_id, stamp(2).event_id);
    assert_eq!(fill.account_id, uuid(ACCOUNT));
    assert_eq!(fill.exchange_order_id.as_deref(), Some("EX-1"));
    assert_eq!(fill.symbol, "XRPUSDT");
    assert_eq!(fill.side, Side::Buy);
    assert!(!fill.is_maker);
    assert_eq!(fill.filled_at, at(2));
}

#[test]
fn fill_row_prefers_the_payload_fields() {
    let other_account = "619699cf-e198-4ad9-b06c-144a025b413f";
    let payload = json(&format!(
        r#"{{"order_id": "{ORDER}", "exchange_trade_id": "T1", "fill_price": "1", "fill_quantity": "1",
            "fee": "0", "fee_asset": "BNB", "is_maker": true, "exchange_order_id": "EX-9",
            "account_id": "{other_account}", "symbol": "BNBUSDT", "side": "sell"}}"#
    ));
    let (_, fill) = apply(&order_of("2"), &payload, 2);
    assert_eq!(fill.account_id, uuid(other_account));
    assert_eq!(fill.exchange_order_id.as_deref(), Some("EX-9"));
    assert_eq!(
        (fill.symbol.as_str(), fill.side, fill.is_maker),
        ("BNBUSDT", Side::Sell, true)
    );
}

#[test]
fn vwap_is_exact_and_rounded_half_away_from_zero_once() {
    let (one, _) = apply(
        &order_of("2"),
        &fill_payload("T1", r#""1.00000000""#, "1"),
        2,
    );
    assert_eq!(one.average_fill_price, Some(dec("1")));
    let (two, _) = apply(&one, &fill_payload("T2", r#""1.00000001""#, "1"), 3);
    assert_eq!(two.average_fill_price, Some(dec("1.00000001")));
}

#[test]
fn vwap_is_computed_over_all_fills_not_from_the_rounded_average() {
    // 1@1, 1@2, 1@2: rounding after each fill would drift (1.5 then 1.66666667).
    let (a, _) = apply(&order_of("10"), &fill_payload("T1", "1", "1"), 2);
    let (b, _) = apply(&a, &fill_payload("T2", "2", "2"), 3);
    assert_eq!(b.average_fill_price, Some(dec("1.66666667")));
    let (c, _) = apply(&b, &fill_payload("T3", "1", "1"), 4);
    assert_eq!(c.average_fill_price, Some(dec("1.5")));
}

#[test]
fn json_number_fills_complete_an_order_exactly() {
    let (a, _) = apply(&order_of("0.3"), &fill_payload("T1", "1", "0.1"), 2);
    let (b, _) = apply(&a, &fill_payload("T2", "1", "0.2"), 3);
    assert_eq!(b.filled_quantity, dec("0.3"));
    assert_eq!(b.status, OrderStatus::Filled);
}

#[test]
fn fill_price_and_quantity_must_be_positive_and_fee_non_negative() {
    let payload = fill_payload("T1", "1", "1");
    assert!(is_invalid(parse_fill(&with(
        &payload,
        "fill_price",
        r#""0""#
    ))));
    assert!(is_invalid(parse_fill(&with(
        &payload,
        "fill_quantity",
        r#""-1""#
    ))));
    assert!(is_invalid(parse_fill(&with(&payload, "fee", r#""-0.01""#))));
    assert!(parse_fill(&with(&payload, "fee", r#""0""#)).is_ok());
}

#[test]
fn fill_without_a_required_field_is_an_invalid_payload() {
    let payload = fill_payload("T1", "1", "1");
    for field in [
        "order_id",
        "exchange_trade_id",
        "fill_price",
        "fill_quantity",
        "fee",
        "fee_asset",
    ] {
        assert!(is_invalid(parse_fill(&without(&payload, field))), "{field}");
    }
}

#[test]
fn fill_optional_fields_are_type_checked() {
    let payload = fill_payload("T1", "1", "1");
    assert!(is_invalid(parse_fill(&with(
        &payload,
        "filled_at",
        r#""not-a-time""#
    ))));
    assert!(is_invalid(parse_fill(&with(
        &payload, "is_maker", r#""yes""#
    ))));
    assert!(is_invalid(parse_fill(&with(&payload, "side", r#""BUY""#))));
    assert!(is_invalid(parse_fill(&with(
        &payload, "symbol", r#""btc""#
    ))));
    assert!(is_invalid(parse_fill(&with(
        &payload,
        "fill_price",
        r#""3400.123456789""#
    ))));
    assert!(parse_fill(&with(&payload, "is_maker", "null")).is_ok());
}

#[test]
fn fill_of_a_missing_order_is_an_invariant_violation() {
    let cmd = parse_fill(&fill_payload("T1", "1", "1")).expect("valid");
    assert!(is_violation(fill(None, &cmd, &stamp(2))));
}

#[test]
fn sums_reaching_ten_to_the_twelve_are_invalid_payloads() {
    let big = OrderRow {
        filled_quantity: dec("999999999999"),
        order_type: OrderType::Market,
        ..order_of("999999999999")
    };
    let cmd = parse_fill(&fill_payload("T1", "1", "1")).expect("valid");
    assert!(is_invalid(fill(Some(&big), &cmd, &stamp(2))));
    let fees = OrderRow {
        total_fee: dec("999999999999.95"),
        ..order_of("2")
    };
    assert!(is_invalid(fill(Some(&fees), &cmd, &stamp(2))));
}
