//! Money as integer minor units of an ISO-4217 currency.
//!
//! Display of amounts lives with the SDK (`bazaar_sdk::Money`), which
//! plugins and the host's reports share.
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
    fn line_amounts_refuse_to_overflow() {
        assert_eq!(line_amount(3, 100).unwrap(), 300);
        assert!(line_amount(u32::MAX, AMOUNT_MINOR_MAX).is_err());
        assert!(add_amounts(AMOUNT_MINOR_MAX, 1).is_err());
    }
}
