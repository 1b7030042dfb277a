use super::*;
use crate::rules::testing::*;
use crate::rules::Command;

pub(super) fn submit_payload() -> serde_json::Value {
    json(&format!(
        r#"{{"order_id": "{ORDER}", "account_id": "{ACCOUNT}", "client_order_id": "c-1",
            "symbol": "BTCUSDT", "side": "buy", "order_type": "limit",
            "quantity": "2", "price": "95000.12"}}"#
    ))
}

pub(super) fn parse_submit(payload: &serde_json::Value) -> Result<Submit> {
    Submit::parse(&fields(payload))
}

pub(super) fn submitted() -> OrderRow {
    let cmd = parse_submit(&submit_payload()).expect("valid");
    submit(None, &cmd, &stamp(1)).expect("new order")
}

pub(super) fn with_status(status: OrderStatus) -> OrderRow {
    OrderRow {
        status,
        ..submitted()
    }
}

#[test]
fn submitted_order_starts_submitted_with_nothing_filled() {
    let row = submitted();
    assert_eq!(row.order_id, uuid(ORDER));
    assert_eq!(row.tenant_id, TENANT);
    assert_eq!(row.account_id, uuid(ACCOUNT));
    assert_eq!(row.status, OrderStatus::Submitted);
    assert_eq!(row.filled_quantity, Decimal::ZERO);
    assert_eq!(row.total_fee, Decimal::ZERO);
    assert_eq!(row.average_fill_price, None);
    assert!(row.exchange_trade_ids.is_empty());
    assert_eq!(row.price, Some(dec("95000.12")));
    assert_eq!(row.quantity, dec("2"));
    assert_eq!((row.created_at, row.updated_at), (at(1), at(1)));
    assert_eq!((row.last_event_id, row.last_seq), (stamp(1).event_id, 1));
    assert_eq!(row.filled_at, None);
}

#[test]
fn submit_without_a_required_field_is_an_invalid_payload() {
    let payload = submit_payload();
    for field in [
        "order_id",
        "account_id",
        "client_order_id",
        "symbol",
        "side",
        "order_type",
        "quantity",
    ] {
        assert!(
            is_invalid(parse_submit(&without(&payload, field))),
            "{field}"
        );
        assert!(
            is_invalid(parse_submit(&with(&payload, field, "null"))),
            "{field} null"
        );
    }
}

#[test]
fn submit_with_wrong_types_is_an_invalid_payload() {
    let payload = submit_payload();
    assert!(is_invalid(parse_submit(&with(&payload, "order_id", "42"))));
    assert!(is_invalid(parse_submit(&with(
        &payload, "quantity", "true"
    ))));
    assert!(is_invalid(parse_submit(&with(
        &payload,
        "position_id",
        r#""not-a-uuid""#
    ))));
    assert!(is_invalid(parse_submit(&with(&payload, "symbol", "[]"))));
}

#[test]
fn side_and_order_type_are_case_sensitive() {
    let payload = submit_payload();
    assert!(is_invalid(parse_submit(&with(
        &payload, "side", r#""BUY""#
    ))));
    assert!(is_invalid(parse_submit(&with(
        &payload,
        "side",
        r#""long""#
    ))));
    assert!(is_invalid(parse_submit(&with(
        &payload,
        "order_type",
        r#""Limit""#
    ))));
    assert!(is_invalid(parse_submit(&with(
        &payload,
        "order_type",
        r#""stop""#
    ))));
}

#[test]
fn quantity_must_be_positive() {
    let payload = submit_payload();
    assert!(is_invalid(parse_submit(&with(
        &payload, "quantity", r#""0""#
    ))));
    assert!(is_invalid(parse_submit(&with(
        &payload,
        "quantity",
        r#""-0.5""#
    ))));
}

#[test]
fn limit_and_stop_loss_limit_orders_need_a_price() {
    let limit = without(&submit_payload(), "price");
    assert!(is_invalid(parse_submit(&limit)));
    let sll = with(
        &with(&limit, "order_type", r#""stop_loss_limit""#),
        "stop_price",
        r#""1""#,
    );
    assert!(is_invalid(parse_submit(&sll)));
    let market = with(&limit, "order_type", r#""market""#);
    assert!(parse_submit(&market).is_ok());
}

#[test]
fn stop_loss_and_stop_loss_limit_orders_need_a_stop_price() {
    let payload = submit_payload();
    assert!(is_invalid(parse_submit(&with(
        &payload,
        "order_type",
        r#""stop_loss""#
    ))));
    assert!(is_invalid(parse_submit(&with(
        &payload,
        "order_type",
        r#""stop_loss_limit""#
    ))));
    let with_stop = with(
        &with(&payload, "order_type", r#""stop_loss""#),
        "stop_price",
        r#""90000""#,
    );
    assert_eq!(
        parse_submit(&with_stop).map(|s| s.stop_price).ok(),
        Some(Some(dec("90000")))
    );
}

#[test]
fn price_and_stop_price_must_be_positive_for_every_order_type() {
    let market = with(
        &without(&submit_payload(), "price"),
        "order_type",
        r#""market""#,
    );
    assert!(is_invalid(parse_submit(&with(&market, "price", r#""0""#))));
    assert!(is_invalid(parse_submit(&with(
        &market,
        "stop_price",
        r#""-1""#
    ))));
    assert!(parse_submit(&with(&market, "price", r#""1""#)).is_ok());
}

#[test]
fn symbol_must_be_one_to_twenty_of_a_to_z_and_digits() {
    let payload = submit_payload();
    for bad in [
        r#""""#,
        r#""btc-usdt""#,
        r#""btcusdt""#,
        r#""BTC USDT""#,
        r#""ABCDEFGHIJKLMNOPQRSTU""#,
    ] {
        assert!(
            is_invalid(parse_submit(&with(&payload, "symbol", bad))),
            "{bad}"
        );
    }
    assert!(parse_submit(&with(&payload, "symbol", r#""ABCDEFGHIJKLMNOPQRS1""#)).is_ok());
}

#[test]
fn client_order_id_must_be_one_to_sixty_four_characters() {
    let payload = submit_payload();
    assert!(is_invalid(parse_submit(&with(
        &payload,
        "client_order_id",
        r#""""#
    ))));
    let long = format!("\"{}\"", "x".repeat(65));
    assert!(is_invalid(parse_submit(&with(
        &payload,
        "client_order_id",
        &long
    ))));
    let max = format!("\"{}\"", "é".repeat(64));
    assert!(parse_submit(&with(&payload, "client_order_id", &max)).is_ok());
}

#[test]
fn decimals_with_nine_places_or_thirteen_digits_are_invalid() {
    let payload = submit_payload();
    assert!(is_invalid(parse_submit(&with(
        &payload,
        "quantity",
        r#""1.100000000""#
    ))));
    assert!(is_invalid(parse_submit(&with(
        &payload,
        "price",
        "1000000000000"
    ))));
    assert!(parse_submit(&with(&payload, "quantity", "1563")).is_ok());
}

#[test]
fn submitting_an_existing_order_is_an_invariant_violation() {
    let existing = submitted();
    let cmd = parse_submit(&submit_payload()).expect("valid");
    assert!(is_violation(submit(Some(&existing), &cmd, &stamp(2))));
}

#[test]
fn order_events_parse_into_their_commands() {
    let payload = submit_payload();
    assert!(matches!(
        command("ORDER_SUBMITTED", &payload),
        Ok(Command::OrderSubmitted(_))
    ));
    let end = json(&format!(r#"{{"order_id": "{ORDER}", "reason": "x"}}"#));
    assert!(matches!(
        command("ORDER_CANCELED", &end),
        Ok(Command::OrderEnded(End {
            status: OrderStatus::Canceled,
            ..
        }))
    ));
}
