//! Money without floats: integer minor units, checked arithmetic, exact
//! decimal parsing and ISO-4217 display.
//!
//! Prices are `i64` counts of the currency's minor unit (fen for CNY, cents
//! for USD). A float cannot hold 0.10 exactly, so a float anywhere between
//! a merchant's "300.00" and the order total eventually shows up as a fen
//! gained or lost. Every operation here is exact or fails with a
//! [`MoneyError`]; none wraps, saturates or rounds silently.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

use crate::PluginError;

/// The largest amount, in minor units, any price, fee or total may have:
/// 10^15 is ten trillion yuan, far above any real order, and the same bound
/// the host kernel uses, so a value accepted here is accepted there too. It
/// leaves room for `quantity * unit price` in `i64` without overflow tricks.
pub const AMOUNT_MINOR_MAX: i64 = 1_000_000_000_000_000;

/// The longest decimal text [`DecimalAmount::parse`] reads. 32 bytes holds
/// any amount up to [`AMOUNT_MINOR_MAX`] with a sign and decimals; longer
/// text is a mistake, and reading it would only waste time.
pub const DECIMAL_TEXT_BYTES_MAX: usize = 32;

/// The most digits after the decimal point a decimal amount may have. No
/// ISO-4217 currency uses more than 4; 9 leaves room for trailing zeros
/// such as "1.500000" without letting the scale overflow `i64`.
pub const FRACTION_DIGITS_MAX: u32 = 9;

/// Basis points in one whole (100 %): 1 bp = 0.01 %.
pub const BASIS_POINTS_PER_WHOLE: u32 = 10_000;

/// Digits after the decimal point in the customary notation of `currency`
/// (its ISO-4217 exponent): 0 for JPY or KRW, 3 for KWD or BHD, 4 for the
/// Chilean unit of account, 2 for every other code.
pub fn minor_unit_digits(currency: &str) -> u32 {
    match currency {
        "BIF" | "CLP" | "DJF" | "GNF" | "ISK" | "JPY" | "KMF" | "KRW" | "PYG" | "RWF" | "UGX"
        | "UYI" | "VND" | "VUV" | "XAF" | "XOF" | "XPF" => 0,
        "BHD" | "IQD" | "JOD" | "KWD" | "LYD" | "OMR" | "TND" => 3,
        "CLF" | "UYW" => 4,
        _ => 2,
    }
}

/// Checks that `code` looks like an ISO-4217 alphabetic code: three
/// upper-case ASCII letters.
pub fn validate_currency_code(code: &str) -> Result<(), MoneyError> {
    let bytes = code.as_bytes();
    if bytes.len() == 3 && bytes.iter().all(u8::is_ascii_uppercase) {
        Ok(())
    } else {
        Err(MoneyError::InvalidCurrency(shorten(code)))
    }
}

/// Why a money operation failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MoneyError {
    /// Two amounts in different currencies were combined.
    CurrencyMismatch {
        /// The currency of the left operand.
        left: String,
        /// The currency of the right operand.
        right: String,
    },
    /// The result is beyond [`AMOUNT_MINOR_MAX`] in magnitude.
    OutOfRange,
    /// The text is not a decimal amount.
    InvalidDecimal(String),
    /// The text has more decimals than the currency's minor unit allows.
    TooPrecise {
        /// The text as given (shortened if long).
        text: String,
        /// The currency it was read in.
        currency: String,
    },
    /// The text is not a percentage between 0 and 100 with at most two
    /// decimals.
    InvalidPercent(String),
    /// The code is not three upper-case letters.
    InvalidCurrency(String),
}

impl fmt::Display for MoneyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::CurrencyMismatch { left, right } => {
                write!(f, "cannot combine amounts in {left} and {right}")
            }
            Self::OutOfRange => {
                write!(f, "amount out of range: at most {AMOUNT_MINOR_MAX} minor units are allowed")
            }
            Self::InvalidDecimal(text) => write!(
                f,
                "{text:?} is not a decimal amount such as \"300.00\" (digits, an optional \
                 sign and at most {FRACTION_DIGITS_MAX} decimals, {DECIMAL_TEXT_BYTES_MAX} \
                 characters at most)"
            ),
            Self::TooPrecise { text, currency } => write!(
                f,
                "{text:?} has more decimals than {currency} allows ({})",
                minor_unit_digits(currency)
            ),
            Self::InvalidPercent(text) => write!(
                f,
                "{text:?} is not a percentage from 0 to 100 with at most two decimals, \
                 such as 10 or \"12.5\""
            ),
            Self::InvalidCurrency(code) => write!(
                f,
                "{code:?} is not an ISO-4217 currency code (three upper-case letters such as \
                 \"CNY\")"
            ),
        }
    }
}

impl std::error::Error for MoneyError {}

/// Money errors met while handling a request come from the request's
/// amounts, so they surface as [`PluginError::Unsupported`]. Errors in a
/// configuration are reported as `InvalidConfig` by the configuration parser
/// instead.
impl From<MoneyError> for PluginError {
    fn from(error: MoneyError) -> Self {
        PluginError::Unsupported(error.to_string())
    }
}

/// An amount in integer minor units of a currency.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Money {
    /// The amount in minor units (30000 is 300.00 CNY).
    pub amount_minor: i64,
    /// ISO-4217 code of the currency the amount is in.
    pub currency: String,
}

impl Money {
    /// `amount_minor` minor units of `currency`.
    pub fn new(amount_minor: i64, currency: &str) -> Self {
        Self { amount_minor, currency: currency.to_owned() }
    }

    /// Nothing, in `currency`.
    pub fn zero(currency: &str) -> Self {
        Self::new(0, currency)
    }

    /// Reads decimal text such as "300.00" as an exact amount of `currency`:
    /// "300.00 CNY" is 30000 fen, "300 JPY" is 300 yen. Text with more
    /// decimals than the currency has ("0.001" CNY) is an error unless the
    /// extra digits are zeros; nothing is ever rounded.
    pub fn parse(text: &str, currency: &str) -> Result<Self, MoneyError> {
        DecimalAmount::parse(text)?.in_currency(currency)
    }

    /// True when the amount is above zero.
    pub fn is_positive(&self) -> bool {
        self.amount_minor > 0
    }

    /// `self + other`; an error if the currencies differ or the sum is out
    /// of range.
    pub fn checked_add(&self, other: &Money) -> Result<Money, MoneyError> {
        self.same_currency(other)?;
        self.with_amount(self.amount_minor.checked_add(other.amount_minor))
    }

    /// `self - other`; an error if the currencies differ or the difference
    /// is out of range.
    pub fn checked_sub(&self, other: &Money) -> Result<Money, MoneyError> {
        self.same_currency(other)?;
        self.with_amount(self.amount_minor.checked_sub(other.amount_minor))
    }

    /// `self * quantity`, as for a cart line; an error if out of range.
    pub fn checked_mul(&self, quantity: u32) -> Result<Money, MoneyError> {
        self.with_amount(self.amount_minor.checked_mul(i64::from(quantity)))
    }

    /// `percent` of `self`, rounded to the nearest minor unit with halves
    /// rounded away from zero (commercial rounding): 10 % of 0.05 CNY is
    /// 0.01 CNY, 10 % of 0.04 CNY is 0.00 CNY. Because the rate is at most
    /// 100 %, the result never exceeds `self` in magnitude.
    pub fn percent(&self, percent: Percent) -> Result<Money, MoneyError> {
        let whole = i128::from(BASIS_POINTS_PER_WHOLE);
        let scaled = i128::from(self.amount_minor.unsigned_abs()) * i128::from(percent.0);
        let rounded = (scaled + whole / 2) / whole;
        let signed = if self.amount_minor < 0 { -rounded } else { rounded };
        self.with_amount(i64::try_from(signed).ok())
    }

    /// The smaller of `self` and `other`; an error if the currencies differ.
    pub fn min(&self, other: &Money) -> Result<Money, MoneyError> {
        self.same_currency(other)?;
        Ok(if other.amount_minor < self.amount_minor { other.clone() } else { self.clone() })
    }

    fn same_currency(&self, other: &Money) -> Result<(), MoneyError> {
        if self.currency == other.currency {
            Ok(())
        } else {
            Err(MoneyError::CurrencyMismatch {
                left: shorten(&self.currency),
                right: shorten(&other.currency),
            })
        }
    }

    fn with_amount(&self, amount_minor: Option<i64>) -> Result<Money, MoneyError> {
        match amount_minor {
            Some(amount_minor)
                if amount_minor.unsigned_abs() <= AMOUNT_MINOR_MAX.unsigned_abs() =>
            {
                Ok(Money::new(amount_minor, &self.currency))
            }
            _ => Err(MoneyError::OutOfRange),
        }
    }
}

impl fmt::Display for Money {
    /// "300.00 CNY", "1200 JPY", "1.500 KWD", "-0.05 USD": the currency's own
    /// number of decimals, then the code.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let digits = minor_unit_digits(&self.currency);
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

/// An exact decimal number read from text such as "300.00", before it is
/// given a currency. Configurations hold amounts this way because the JSON
/// number 300.1 would be parsed through a float.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DecimalAmount {
    /// The digits as an integer: 30000 for "300.00".
    scaled: i64,
    /// Digits after the decimal point: 2 for "300.00".
    scale: u32,
}

impl DecimalAmount {
    /// Reads an optional `-`, decimal digits, and optionally `.` followed by
    /// at most [`FRACTION_DIGITS_MAX`] digits. No exponent, no thousands
    /// separators, no spaces.
    pub fn parse(text: &str) -> Result<Self, MoneyError> {
        let invalid = || MoneyError::InvalidDecimal(shorten(text));
        if text.len() > DECIMAL_TEXT_BYTES_MAX {
            return Err(invalid());
        }
        let (negative, unsigned) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let (whole, fraction) = match unsigned.split_once('.') {
            Some((whole, fraction)) => (whole, fraction),
            None => (unsigned, ""),
        };
        let all_digits = |part: &str| part.bytes().all(|byte| byte.is_ascii_digit());
        let has_point = unsigned.contains('.');
        if whole.is_empty()
            || !all_digits(whole)
            || !all_digits(fraction)
            || (has_point && fraction.is_empty())
            || fraction.len() > FRACTION_DIGITS_MAX as usize
        {
            return Err(invalid());
        }
        let mut scaled: i64 = 0;
        for byte in whole.bytes().chain(fraction.bytes()) {
            scaled = scaled
                .checked_mul(10)
                .and_then(|value| value.checked_add(i64::from(byte - b'0')))
                .ok_or(MoneyError::OutOfRange)?;
        }
        Ok(Self {
            scaled: if negative { -scaled } else { scaled },
            // Bounded by FRACTION_DIGITS_MAX above.
            scale: fraction.len() as u32,
        })
    }

    /// The amount in minor units of `currency`, exactly: an error if it has
    /// non-zero digits below the currency's minor unit or is out of range.
    pub fn in_currency(self, currency: &str) -> Result<Money, MoneyError> {
        let digits = minor_unit_digits(currency);
        let amount_minor = if self.scale <= digits {
            self.scaled.checked_mul(10i64.pow(digits - self.scale)).ok_or(MoneyError::OutOfRange)?
        } else {
            let divisor = 10i64.pow(self.scale - digits);
            if self.scaled % divisor != 0 {
                return Err(MoneyError::TooPrecise {
                    text: self.to_string(),
                    currency: shorten(currency),
                });
            }
            self.scaled / divisor
        };
        Money::zero(currency).with_amount(Some(amount_minor))
    }

    /// True when the amount is below zero.
    pub fn is_negative(self) -> bool {
        self.scaled < 0
    }
}

impl fmt::Display for DecimalAmount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.scaled < 0 { "-" } else { "" };
        let magnitude = self.scaled.unsigned_abs();
        if self.scale == 0 {
            return write!(f, "{sign}{magnitude}");
        }
        let divisor = 10u64.pow(self.scale);
        write!(
            f,
            "{sign}{}.{:0width$}",
            magnitude / divisor,
            magnitude % divisor,
            width = self.scale as usize
        )
    }
}

/// Reads a JSON string ("300.00") or a JSON integer (300). A JSON number
/// with a fraction is refused with a hint, because serde_json has already
/// turned it into a float and its exact digits are gone.
impl<'de> Deserialize<'de> for DecimalAmount {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct DecimalVisitor;

        impl Visitor<'_> for DecimalVisitor {
            type Value = DecimalAmount;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a decimal amount as a string such as \"300.00\", or an integer")
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<DecimalAmount, E> {
                DecimalAmount::parse(text).map_err(E::custom)
            }

            fn visit_i64<E: de::Error>(self, value: i64) -> Result<DecimalAmount, E> {
                Ok(DecimalAmount { scaled: value, scale: 0 })
            }

            fn visit_u64<E: de::Error>(self, value: u64) -> Result<DecimalAmount, E> {
                let scaled = i64::try_from(value).map_err(|_| E::custom(MoneyError::OutOfRange))?;
                self.visit_i64(scaled)
            }

            fn visit_f64<E: de::Error>(self, _value: f64) -> Result<DecimalAmount, E> {
                Err(E::custom(
                    "write amounts with decimals as strings, such as \"300.50\", so that no \
                     digit is lost to floating point",
                ))
            }
        }

        deserializer.deserialize_any(DecimalVisitor)
    }
}

/// A percentage from 0 % to 100 %, held exactly in basis points
/// (1 bp = 0.01 %).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Percent(u32);

impl Percent {
    /// 100 %.
    pub const WHOLE: Percent = Percent(BASIS_POINTS_PER_WHOLE);

    /// `basis_points` / 100 percent; an error above 100 %.
    pub fn from_basis_points(basis_points: u32) -> Result<Self, MoneyError> {
        if basis_points > BASIS_POINTS_PER_WHOLE {
            return Err(MoneyError::InvalidPercent(basis_points.to_string() + " bp"));
        }
        Ok(Self(basis_points))
    }

    /// Reads "10", "12.5" or "12.25" (percent, at most two decimals, at most
    /// 100).
    pub fn parse(text: &str) -> Result<Self, MoneyError> {
        let invalid = || MoneyError::InvalidPercent(shorten(text));
        let decimal = DecimalAmount::parse(text).map_err(|_| invalid())?;
        if decimal.is_negative() || decimal.scale > 2 {
            return Err(invalid());
        }
        let basis_points = decimal.scaled * 10i64.pow(2 - decimal.scale);
        u32::try_from(basis_points)
            .ok()
            .filter(|basis_points| *basis_points <= BASIS_POINTS_PER_WHOLE)
            .map(Self)
            .ok_or_else(invalid)
    }

    /// The rate in basis points: 1250 for 12.5 %.
    pub fn basis_points(self) -> u32 {
        self.0
    }

    /// True for 0 %.
    pub fn is_zero(self) -> bool {
        self.0 == 0
    }
}

impl fmt::Display for Percent {
    /// "10%", "12.5%", "12.25%".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let whole = self.0 / 100;
        match self.0 % 100 {
            0 => write!(f, "{whole}%"),
            hundredths if hundredths % 10 == 0 => write!(f, "{whole}.{}%", hundredths / 10),
            hundredths => write!(f, "{whole}.{hundredths:02}%"),
        }
    }
}

/// Reads a JSON integer (whole percent, `10`) or a JSON string (`"12.5"`).
impl<'de> Deserialize<'de> for Percent {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct PercentVisitor;

        impl Visitor<'_> for PercentVisitor {
            type Value = Percent;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a percentage from 0 to 100, such as 10 or \"12.5\"")
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<Percent, E> {
                Percent::parse(text).map_err(E::custom)
            }

            fn visit_u64<E: de::Error>(self, value: u64) -> Result<Percent, E> {
                u32::try_from(value)
                    .ok()
                    .and_then(|whole| whole.checked_mul(100))
                    .ok_or_else(|| E::custom(MoneyError::InvalidPercent(value.to_string())))
                    .and_then(|basis_points| {
                        Percent::from_basis_points(basis_points)
                            .map_err(|_| E::custom(MoneyError::InvalidPercent(value.to_string())))
                    })
            }

            fn visit_i64<E: de::Error>(self, value: i64) -> Result<Percent, E> {
                Err(E::custom(MoneyError::InvalidPercent(value.to_string())))
            }

            fn visit_f64<E: de::Error>(self, _value: f64) -> Result<Percent, E> {
                Err(E::custom(
                    "write percentages with decimals as strings, such as \"12.5\", so that no \
                     digit is lost to floating point",
                ))
            }
        }

        deserializer.deserialize_any(PercentVisitor)
    }
}

/// Text quoted in an error, cut to a readable length: errors are shown to
/// people and logged, and the text may come from a client.
fn shorten(text: &str) -> String {
    const QUOTED_CHARS_MAX: usize = 40;
    text.chars().take(QUOTED_CHARS_MAX).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cny(amount_minor: i64) -> Money {
        Money::new(amount_minor, "CNY")
    }

    #[test]
    fn money_displays_with_the_currency_minor_unit_digits() {
        assert_eq!(cny(30000).to_string(), "300.00 CNY");
        assert_eq!(cny(-5).to_string(), "-0.05 CNY");
        assert_eq!(Money::new(1200, "JPY").to_string(), "1200 JPY");
        assert_eq!(Money::new(1200, "KRW").to_string(), "1200 KRW");
        assert_eq!(Money::new(1500, "KWD").to_string(), "1.500 KWD");
        assert_eq!(Money::new(1, "BHD").to_string(), "0.001 BHD");
        assert_eq!(Money::new(123_456, "USD").to_string(), "1234.56 USD");
    }

    #[test]
    fn decimal_text_parses_exactly_into_minor_units() {
        assert_eq!(Money::parse("300.00", "CNY"), Ok(cny(30000)));
        assert_eq!(Money::parse("300", "CNY"), Ok(cny(30000)));
        assert_eq!(Money::parse("0.1", "CNY"), Ok(cny(10)));
        assert_eq!(Money::parse("19.99", "USD"), Ok(Money::new(1999, "USD")));
        assert_eq!(Money::parse("1.5", "KWD"), Ok(Money::new(1500, "KWD")));
        assert_eq!(Money::parse("300", "JPY"), Ok(Money::new(300, "JPY")));
        assert_eq!(Money::parse("300.000", "CNY"), Ok(cny(30000)));
        assert_eq!(Money::parse("-2.50", "CNY"), Ok(cny(-250)));
    }

    #[test]
    fn decimal_text_with_digits_below_the_minor_unit_is_refused_not_rounded() {
        assert!(matches!(Money::parse("0.001", "CNY"), Err(MoneyError::TooPrecise { .. })));
        assert!(matches!(Money::parse("300.5", "JPY"), Err(MoneyError::TooPrecise { .. })));
    }

    #[test]
    fn malformed_decimal_text_is_refused() {
        for text in [
            "",
            "-",
            ".5",
            "5.",
            "1e3",
            "1,000.00",
            " 1.00",
            "1.00 ",
            "+1",
            "1..0",
            "0x10",
            "1.0000000000",
            "٣",
        ] {
            assert!(
                matches!(DecimalAmount::parse(text), Err(MoneyError::InvalidDecimal(_))),
                "{text:?} should be refused"
            );
        }
        let long = "1".repeat(DECIMAL_TEXT_BYTES_MAX + 1);
        assert!(DecimalAmount::parse(&long).is_err());
        assert_eq!(DecimalAmount::parse("99999999999999999999"), Err(MoneyError::OutOfRange));
        assert_eq!(Money::parse("10000000000000.01", "CNY"), Err(MoneyError::OutOfRange));
    }

    #[test]
    fn arithmetic_refuses_mixed_currencies_and_overflow() {
        assert_eq!(cny(100).checked_add(&cny(250)), Ok(cny(350)));
        assert_eq!(cny(100).checked_sub(&cny(250)), Ok(cny(-150)));
        assert_eq!(cny(1999).checked_mul(3), Ok(cny(5997)));
        assert!(matches!(
            cny(100).checked_add(&Money::new(100, "USD")),
            Err(MoneyError::CurrencyMismatch { .. })
        ));
        assert_eq!(cny(AMOUNT_MINOR_MAX).checked_add(&cny(1)), Err(MoneyError::OutOfRange));
        assert_eq!(cny(i64::MAX / 2).checked_mul(3), Err(MoneyError::OutOfRange));
        assert_eq!(cny(AMOUNT_MINOR_MAX).checked_mul(2), Err(MoneyError::OutOfRange));
    }

    #[test]
    fn percentages_round_half_away_from_zero() {
        let ten = Percent::parse("10").unwrap();
        assert_eq!(cny(5).percent(ten), Ok(cny(1)));
        assert_eq!(cny(4).percent(ten), Ok(cny(0)));
        assert_eq!(cny(-5).percent(ten), Ok(cny(-1)));
        assert_eq!(cny(29999).percent(Percent::parse("12.5").unwrap()), Ok(cny(3750)));
        assert_eq!(cny(AMOUNT_MINOR_MAX).percent(Percent::WHOLE), Ok(cny(AMOUNT_MINOR_MAX)));
    }

    #[test]
    fn percentages_parse_exactly_and_stay_within_one_hundred() {
        assert_eq!(Percent::parse("12.5").map(Percent::basis_points), Ok(1250));
        assert_eq!(Percent::parse("12.25").map(Percent::basis_points), Ok(1225));
        assert_eq!(Percent::parse("100").map(Percent::basis_points), Ok(10_000));
        assert!(Percent::parse("100.01").is_err());
        assert!(Percent::parse("-1").is_err());
        assert!(Percent::parse("12.345").is_err());
        assert!(Percent::from_basis_points(10_001).is_err());
        assert_eq!(Percent::parse("12.5").unwrap().to_string(), "12.5%");
        assert_eq!(Percent::parse("12.25").unwrap().to_string(), "12.25%");
        assert_eq!(Percent::parse("8").unwrap().to_string(), "8%");
    }

    #[test]
    fn json_amounts_and_percentages_refuse_floats() {
        let amount: DecimalAmount = serde_json::from_str("\"300.50\"").unwrap();
        assert_eq!(amount.in_currency("CNY"), Ok(cny(30050)));
        let whole: DecimalAmount = serde_json::from_str("300").unwrap();
        assert_eq!(whole.in_currency("CNY"), Ok(cny(30000)));
        assert!(serde_json::from_str::<DecimalAmount>("300.5").is_err());

        let percent: Percent = serde_json::from_str("15").unwrap();
        assert_eq!(percent.basis_points(), 1500);
        assert!(serde_json::from_str::<Percent>("12.5").is_err());
        assert!(serde_json::from_str::<Percent>("101").is_err());
        assert!(serde_json::from_str::<Percent>("-3").is_err());
    }

    #[test]
    fn min_picks_the_smaller_amount_of_one_currency() {
        assert_eq!(cny(300).min(&cny(200)), Ok(cny(200)));
        assert_eq!(cny(200).min(&cny(300)), Ok(cny(200)));
        assert!(cny(1).min(&Money::new(1, "JPY")).is_err());
    }

    #[test]
    fn currency_codes_must_be_three_upper_case_letters() {
        assert!(validate_currency_code("CNY").is_ok());
        for code in ["cny", "CN", "CNYY", "C1Y", ""] {
            assert!(validate_currency_code(code).is_err(), "{code:?}");
        }
    }
}
