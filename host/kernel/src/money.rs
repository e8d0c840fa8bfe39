//! Money as integer minor units of an ISO-4217 currency.
//!
//! Prices never touch floating point: an amount is an `i64` count of the
//! currency's minor unit (fen, cents), and every operation is checked so an
//! overflow is an error, never a wrapped price.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::KernelError;

/// The largest amount a single price, fee or order total may have, in minor
/// units: 10^15 is ten trillion yuan, far above any real order, and leaves
/// headroom so that `quantity * unit price` sums cannot overflow `i64`.
pub const AMOUNT_MINOR_MAX: i64 = 1_000_000_000_000_000;

/// An ISO-4217 alphabetic currency code: three upper-case ASCII letters.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Currency([u8; 3]);

impl Currency {
    /// Parses a code such as "CNY"; anything but three upper-case ASCII
    /// letters is an error.
    pub fn parse(code: &str) -> Result<Self, KernelError> {
        let bytes = code.as_bytes();
        if bytes.len() != 3 || !bytes.iter().all(u8::is_ascii_uppercase) {
            return Err(KernelError::InvalidCurrency(code.chars().take(16).collect()));
        }
        Ok(Self([bytes[0], bytes[1], bytes[2]]))
    }

    /// The code as text.
    pub fn as_str(&self) -> &str {
        // Only ASCII upper-case letters are ever stored (see `parse`).
        std::str::from_utf8(&self.0).unwrap_or("???")
    }

    /// Digits after the decimal point in the currency's customary notation.
    /// ISO-4217 exponents for the currencies that differ from 2; every other
    /// code is shown with two.
    pub fn minor_unit_digits(&self) -> u32 {
        match self.as_str() {
            "JPY" | "KRW" | "VND" | "CLP" | "ISK" | "UGX" | "PYG" => 0,
            "BHD" | "KWD" | "OMR" | "JOD" | "TND" | "LYD" | "IQD" => 3,
            _ => 2,
        }
    }
}

impl fmt::Debug for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An amount in integer minor units of a currency.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Money {
    /// The amount in minor units (30000 CNY is 300.00 yuan).
    pub amount_minor: i64,
    /// The currency of the amount.
    pub currency: Currency,
}

impl Money {
    /// An amount of `currency`.
    pub fn new(amount_minor: i64, currency: Currency) -> Self {
        Self { amount_minor, currency }
    }
}

impl fmt::Display for Money {
    /// Formats as "300.00 CNY", with the currency's own number of digits.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let digits = self.currency.minor_unit_digits();
        let sign = if self.amount_minor < 0 { "-" } else { "" };
        let magnitude = self.amount_minor.unsigned_abs();
        if digits == 0 {
            return write!(f, "{sign}{magnitude} {}", self.currency);
        }
        let scale = 10u64.pow(digits);
        write!(
            f,
            "{sign}{}.{:0width$} {}",
            magnitude / scale,
            magnitude % scale,
            self.currency,
            width = digits as usize
        )
    }
}

/// `quantity * unit_minor`, or an error past [`AMOUNT_MINOR_MAX`].
pub fn line_amount(quantity: u32, unit_minor: i64) -> Result<i64, KernelError> {
    i64::from(quantity)
        .checked_mul(unit_minor)
        .filter(|amount| *amount <= AMOUNT_MINOR_MAX)
        .ok_or(KernelError::AmountOverflow)
}

/// `a + b`, or an error past [`AMOUNT_MINOR_MAX`].
pub fn add_amounts(a: i64, b: i64) -> Result<i64, KernelError> {
    a.checked_add(b).filter(|amount| *amount <= AMOUNT_MINOR_MAX).ok_or(KernelError::AmountOverflow)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn currency_codes_must_be_three_upper_case_letters() {
        assert!(Currency::parse("CNY").is_ok());
        assert!(Currency::parse("cny").is_err());
        assert!(Currency::parse("CN").is_err());
        assert!(Currency::parse("CNYY").is_err());
        assert!(Currency::parse("C1Y").is_err());
    }

    #[test]
    fn money_displays_with_the_currency_exponent() {
        let cny = Currency::parse("CNY").unwrap();
        let jpy = Currency::parse("JPY").unwrap();
        let kwd = Currency::parse("KWD").unwrap();
        assert_eq!(Money::new(30000, cny).to_string(), "300.00 CNY");
        assert_eq!(Money::new(-5, cny).to_string(), "-0.05 CNY");
        assert_eq!(Money::new(1200, jpy).to_string(), "1200 JPY");
        assert_eq!(Money::new(1500, kwd).to_string(), "1.500 KWD");
    }

    #[test]
    fn line_amounts_refuse_to_overflow() {
        assert_eq!(line_amount(3, 100).unwrap(), 300);
        assert!(line_amount(u32::MAX, AMOUNT_MINOR_MAX).is_err());
        assert!(add_amounts(AMOUNT_MINOR_MAX, 1).is_err());
    }
}
