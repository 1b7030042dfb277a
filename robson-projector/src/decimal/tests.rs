use super::*;
use std::str::FromStr;

fn dec(s: &str) -> Decimal {
    Decimal::from_str(s).expect("test literal")
}

#[test]
fn strings_with_up_to_eight_places_parse_exactly() {
    assert_eq!(parse_string("95000.12"), Ok(dec("95000.12")));
    assert_eq!(parse_string("-12.34567890"), Ok(dec("-12.3456789")));
    assert_eq!(parse_string("0"), Ok(Decimal::ZERO));
    assert_eq!(parse_string("007.5"), Ok(dec("7.5")));
    assert_eq!(parse_string("1.5").map(|d| d.scale()), Ok(8));
}

#[test]
fn strings_outside_the_grammar_are_invalid() {
    for text in [
        "", "-", "+1", "1.", ".5", "1e3", " 1", "1,5", "0x10", "1.2.3", "--1", "NaN",
    ] {
        assert!(parse_string(text).is_err(), "{text:?} should be invalid");
    }
}

#[test]
fn fractional_digits_are_counted_as_written() {
    assert!(parse_string("1.100000000").is_err());
    assert!(parse_string("0.000000001").is_err());
    assert_eq!(parse_string("1.10000000"), Ok(dec("1.1")));
}

#[test]
fn magnitudes_of_ten_to_the_twelve_are_invalid() {
    assert!(parse_string("1000000000000").is_err());
    assert!(parse_string("-1000000000000").is_err());
    assert!(parse_string("1000000000000.0").is_err());
    assert_eq!(
        parse_string("999999999999.99999999"),
        Ok(dec("999999999999.99999999"))
    );
    assert_eq!(parse_string("0000000000000001"), Ok(dec("1")));
}

#[test]
fn json_number_literals_are_read_exactly() {
    assert_eq!(parse_number("0.1"), Ok(dec("0.1")));
    assert_eq!(parse_number("1563"), Ok(dec("1563")));
    assert_eq!(parse_number("-0.5"), Ok(dec("-0.5")));
    assert_eq!(parse_number("1e3"), Ok(dec("1000")));
    assert_eq!(parse_number("1.5E-2"), Ok(dec("0.015")));
    assert_eq!(parse_number("25e+1"), Ok(dec("250")));
}

#[test]
fn json_numbers_follow_the_same_bounds() {
    assert!(parse_number("1000000000000").is_err());
    assert!(parse_number("1e12").is_err());
    assert!(parse_number("1.5e-9").is_err());
    assert!(parse_number("0.123456789").is_err());
    assert!(parse_number("1e99999999999999999999").is_err());
    assert_eq!(parse_number("0e999999"), Ok(Decimal::ZERO));
}

#[test]
fn sums_reaching_ten_to_the_twelve_are_refused() {
    assert!(within_bound("total", dec("999999999999.99999999")).is_ok());
    assert!(within_bound("total", dec("1000000000000")).is_err());
    assert!(within_bound("total", dec("-1000000000000")).is_err());
}

#[test]
fn vwap_rounds_half_away_from_zero() {
    let n = Notional::default()
        .plus_fill(dec("1.00000000"), dec("1"))
        .plus_fill(dec("1.00000001"), dec("1"));
    assert_eq!(n.vwap(dec("2")), Some(dec("1.00000001")));
}

#[test]
fn vwap_rounds_down_below_the_half() {
    // (1·1 + 2·2) / 3 = 1.666…67 ; (1 + 1.00000002) / 2 exact.
    let n = Notional::default()
        .plus_fill(dec("1"), dec("1"))
        .plus_fill(dec("2"), dec("2"));
    assert_eq!(n.vwap(dec("3")), Some(dec("1.66666667")));
    let n = Notional::default()
        .plus_fill(dec("0.00000001"), dec("0.00000001"))
        .plus_fill(dec("0.00000002"), dec("0.00000002"));
    // (1e-16 + 4e-16) / 3e-8 = 1.666…e-8 → 0.00000002
    assert_eq!(n.vwap(dec("0.00000003")), Some(dec("0.00000002")));
}

#[test]
fn vwap_of_huge_fills_is_exact() {
    let n = Notional::default()
        .plus_fill(dec("999999999999.99999999"), dec("999999999999.99999999"))
        .plus_fill(dec("0.00000001"), dec("0.00000001"));
    let q = dec("999999999999.99999999") + dec("0.00000001");
    assert_eq!(n.vwap(q), Some(dec("999999999999.99999998")));
}

#[test]
fn vwap_is_none_before_the_first_fill() {
    assert_eq!(Notional::default().vwap(Decimal::ZERO), None);
}

#[test]
fn notional_round_trips_through_its_column_text() {
    let n = Notional::default().plus_fill(dec("580.86"), dec("0.551"));
    assert_eq!(n.to_db_text(), "320.0538600000000000");
    assert_eq!(Notional::from_db_text(&n.to_db_text()), Ok(n));
    assert_eq!(Notional::default().to_db_text(), "0.0000000000000000");
    assert_eq!(Notional::from_db_text("0"), Ok(Notional::default()));
    assert!(Notional::from_db_text("1.00000000000000001").is_err());
}
