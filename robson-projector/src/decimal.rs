//! Money and quantities (SPEC §3.0, §3.3): parsing payload decimals from
//! their literal text, the bounds of `numeric(20,8)`, and the exact fill
//! notional behind an order's VWAP. No JSON or SQL here.

use num_bigint::BigInt;
use rust_decimal::Decimal;

/// Fractional digits a stored decimal may have.
pub const SCALE: u32 = 8;

/// Integer digits a stored decimal may have: |x| < 10^12 (`numeric(20,8)`).
const MAX_INT_DIGITS: usize = 12;

/// Fractional digits of a [`Notional`]: a price times a quantity.
const NOTIONAL_SCALE: usize = 16;

/// 10^12, the exclusive bound of every stored decimal and sum.
pub fn bound() -> Decimal {
    Decimal::from(1_000_000_000_000_i64)
}

/// `x` if it fits `numeric(20,8)` (|x| < 10^12), else an error text naming
/// `what`. Used for sums (filled_quantity, total_fee, total).
pub fn within_bound(what: &str, x: Decimal) -> Result<Decimal, String> {
    if x.abs() < bound() {
        Ok(x)
    } else {
        Err(format!("{what} {x} would reach 10^12"))
    }
}

/// Parses a decimal written as a JSON string: `-?[0-9]+(\.[0-9]+)?`, at most
/// 8 fractional digits as written, |x| < 10^12. The result has scale 8.
pub fn parse_string(text: &str) -> Result<Decimal, String> {
    let (negative, unsigned) = split_sign(text);
    let (int, frac) = split_point(unsigned).ok_or_else(|| not_decimal(text))?;
    from_digits(text, negative, int, frac, 0)
}

/// Parses the literal of a JSON number (`-?int(.frac)?([eE][+-]?exp)?`),
/// never through binary floating point. Fractional digits are counted as
/// written after applying the exponent (`1.5e-9` has 10).
pub fn parse_number(literal: &str) -> Result<Decimal, String> {
    let (mantissa, exponent) = match literal.find(['e', 'E']) {
        Some(i) => {
            let exp = &literal[i + 1..];
            let exp = exp.strip_prefix('+').unwrap_or(exp);
            let exp: i64 = exp.parse().map_err(|_| not_decimal(literal))?;
            (&literal[..i], exp)
        }
        None => (literal, 0),
    };
    let (negative, unsigned) = split_sign(mantissa);
    let (int, frac) = split_point(unsigned).ok_or_else(|| not_decimal(literal))?;
    from_digits(literal, negative, int, frac, exponent)
}

fn split_sign(text: &str) -> (bool, &str) {
    match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    }
}

/// `int[.frac]` with at least one digit on each side of the point.
fn split_point(text: &str) -> Option<(&str, &str)> {
    let (int, frac) = match text.split_once('.') {
        Some((int, frac)) if !frac.is_empty() => (int, frac),
        Some(_) => return None,
        None => (text, ""),
    };
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    (!int.is_empty() && digits(int) && digits(frac)).then_some((int, frac))
}

fn not_decimal(text: &str) -> String {
    format!("{text:?} is not a decimal")
}

/// Builds the value `±int.frac × 10^exponent` from validated digit strings.
fn from_digits(
    text: &str,
    negative: bool,
    int: &str,
    frac: &str,
    exponent: i64,
) -> Result<Decimal, String> {
    let digits = format!("{int}{frac}");
    let digits = digits.trim_start_matches('0');
    let scale = i64::try_from(frac.len())
        .unwrap_or(i64::MAX)
        .saturating_sub(exponent);
    if scale > i64::from(SCALE) {
        return Err(format!("{text} has more than {SCALE} fractional digits"));
    }
    if digits.is_empty() {
        return Ok(Decimal::new(0, SCALE));
    }
    // Digits left of the point once the value is written with `scale` ≥ 0.
    let int_digits = i64::try_from(digits.len())
        .unwrap_or(i64::MAX)
        .saturating_sub(scale);
    if int_digits > MAX_INT_DIGITS as i64 {
        return Err(format!("{text} is too large (|x| must be below 10^12)"));
    }
    // At most 20 significant digits (12 + 8) once scaled to 8 places.
    let mut mantissa: i128 = digits.parse().map_err(|_| not_decimal(text))?;
    for _ in scale..i64::from(SCALE) {
        mantissa *= 10;
    }
    if negative {
        mantissa = -mantissa;
    }
    Decimal::try_from_i128_with_scale(mantissa, SCALE).map_err(|_| not_decimal(text))
}

/// A decimal at scale 8 as an integer number of 10^-8 units.
fn units(x: Decimal) -> i128 {
    let mut x = x;
    x.rescale(SCALE);
    x.mantissa()
}

/// Σ fill_price·fill_quantity over an order's fills, exact: a whole number of
/// 10^-16 units (a product of two scale-8 decimals), unbounded. Stored in
/// `orders_current.fill_notional` (unconstrained `numeric`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Notional(BigInt);

impl Notional {
    /// The notional after one more fill.
    pub fn plus_fill(&self, price: Decimal, quantity: Decimal) -> Notional {
        Notional(&self.0 + BigInt::from(units(price)) * BigInt::from(units(quantity)))
    }

    /// The VWAP Σ(p·q)/Σ(q) for `filled_quantity` = Σ(q) > 0, rounded half away
    /// from zero to 8 places; `None` before the first fill.
    pub fn vwap(&self, filled_quantity: Decimal) -> Option<Decimal> {
        let q = BigInt::from(units(filled_quantity));
        if q <= BigInt::ZERO || self.0 < BigInt::ZERO {
            return None;
        }
        // notional/10^16 ÷ q/10^8 = (notional ÷ q) units of 10^-8; both are
        // positive, so half away from zero is floor((2n + q) / 2q).
        let two = BigInt::from(2);
        let rounded = (&two * &self.0 + &q) / (&two * &q);
        let mantissa = i128::try_from(&rounded).ok()?;
        Decimal::try_from_i128_with_scale(mantissa, SCALE).ok()
    }

    /// The text written to the `numeric` column: `int.frac` with 16 places.
    pub fn to_db_text(&self) -> String {
        let digits = self.0.magnitude().to_string();
        let padded = format!("{digits:0>width$}", width = NOTIONAL_SCALE + 1);
        let (int, frac) = padded.split_at(padded.len() - NOTIONAL_SCALE);
        let sign = if self.0 < BigInt::ZERO { "-" } else { "" };
        format!("{sign}{int}.{frac}")
    }

    /// Reads the column's text (`numeric` output, at most 16 places).
    pub fn from_db_text(text: &str) -> Result<Notional, String> {
        let (negative, unsigned) = split_sign(text.trim());
        let (int, frac) = split_point(unsigned).ok_or_else(|| not_decimal(text))?;
        if frac.len() > NOTIONAL_SCALE {
            return Err(format!("fill_notional {text} has more than 16 places"));
        }
        let digits = format!("{int}{frac:0<width$}", width = NOTIONAL_SCALE);
        let value: BigInt = digits.parse().map_err(|_| not_decimal(text))?;
        Ok(Notional(if negative { -value } else { value }))
    }
}

#[cfg(test)]
mod tests;
