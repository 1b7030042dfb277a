//! ORDER_ACKED, ORDER_REJECTED and ORDER_CANCELED on an existing order.

use super::tests::{submitted, with_status};
use super::*;
use crate::rules::testing::*;

#[test]
fn ack_of_a_submitted_order_acknowledges_it() {
    let cmd = Ack {
        order_id: uuid(ORDER),
        exchange_order_id: "X1".into(),
    };
    let row = ack(Some(&submitted()), &cmd, &stamp(2)).expect("acked");
    assert_eq!(row.status, OrderStatus::Acknowledged);
    assert_eq!(row.exchange_order_id.as_deref(), Some("X1"));
    assert_eq!(
        (row.last_seq, row.updated_at, row.created_at),
        (2, at(2), at(1))
    );
}

#[test]
fn ack_overwrites_the_exchange_order_id_whatever_the_status() {
    for status in [
        OrderStatus::Partial,
        OrderStatus::Filled,
        OrderStatus::Canceled,
        OrderStatus::Acknowledged,
    ] {
        let before = OrderRow {
            exchange_order_id: Some("OLD".into()),
            ..with_status(status)
        };
        let cmd = Ack {
            order_id: uuid(ORDER),
            exchange_order_id: "NEW".into(),
        };
        let row = ack(Some(&before), &cmd, &stamp(3)).expect("acked");
        assert_eq!(row.status, status);
        assert_eq!(row.exchange_order_id.as_deref(), Some("NEW"));
        assert_eq!(row.last_event_id, stamp(3).event_id);
    }
}

#[test]
fn ack_needs_an_exchange_order_id_and_an_existing_order() {
    let payload = json(&format!(
        r#"{{"order_id": "{ORDER}", "acked_at": "2024-03-01T08:00:00Z"}}"#
    ));
    assert!(is_invalid(Ack::parse(&fields(&payload))));
    let cmd = Ack {
        order_id: uuid(ORDER),
        exchange_order_id: "X".into(),
    };
    assert!(is_violation(ack(None, &cmd, &stamp(2))));
}

#[test]
fn reject_and_cancel_end_an_open_order() {
    for open in [
        OrderStatus::Submitted,
        OrderStatus::Acknowledged,
        OrderStatus::Partial,
    ] {
        let rejected = End {
            order_id: uuid(ORDER),
            status: OrderStatus::Rejected,
        };
        let canceled = End {
            order_id: uuid(ORDER),
            status: OrderStatus::Canceled,
        };
        let before = with_status(open);
        assert_eq!(
            end(Some(&before), &rejected, &stamp(2))
                .map(|r| r.status)
                .ok(),
            Some(OrderStatus::Rejected)
        );
        assert_eq!(
            end(Some(&before), &canceled, &stamp(2))
                .map(|r| r.status)
                .ok(),
            Some(OrderStatus::Canceled)
        );
    }
}

#[test]
fn reject_or_cancel_of_a_final_order_keeps_its_status_but_stamps_the_row() {
    for done in [
        OrderStatus::Filled,
        OrderStatus::Canceled,
        OrderStatus::Rejected,
    ] {
        let cmd = End {
            order_id: uuid(ORDER),
            status: OrderStatus::Rejected,
        };
        let row = end(Some(&with_status(done)), &cmd, &stamp(5)).expect("stamped");
        assert_eq!(row.status, done);
        assert_eq!(
            (row.last_seq, row.last_event_id, row.updated_at),
            (5, stamp(5).event_id, at(5))
        );
    }
}

#[test]
fn reject_requires_a_reason_and_cancel_does_not() {
    let no_reason = json(&format!(r#"{{"order_id": "{ORDER}"}}"#));
    assert!(is_invalid(End::parse_rejected(&fields(&no_reason))));
    assert!(End::parse_canceled(&fields(&no_reason)).is_ok());
    let with_reason = with(&no_reason, "reason", r#""PRICE_FILTER""#);
    assert!(End::parse_rejected(&fields(&with_reason)).is_ok());
    assert!(is_invalid(End::parse_canceled(&fields(&with(
        &no_reason, "reason", "7"
    )))));
}

#[test]
fn reject_or_cancel_of_a_missing_order_is_an_invariant_violation() {
    let cmd = End {
        order_id: uuid(ORDER),
        status: OrderStatus::Canceled,
    };
    assert!(is_violation(end(None, &cmd, &stamp(2))));
}
