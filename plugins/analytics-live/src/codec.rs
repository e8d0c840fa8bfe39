//! The compact binary encoding of the plugin's state values.
//!
//! Every value starts with one version byte ([`ENCODING_VERSION`]); what
//! follows is a sequence of unsigned LEB128 integers (7 bits a byte, so a
//! count below 128 takes one byte), signed integers in zigzag form (small
//! magnitudes of either sign stay short), and strings as a length then
//! their UTF-8 bytes. Collections are written in a fixed order (sorted by
//! key), so the same figures always give the same bytes.
//!
//! Decoding never trusts the bytes: a truncated value, an integer that
//! does not fit, a count above its limit, invalid UTF-8 or trailing bytes
//! are a [`DecodeError`], never a panic.

use std::fmt;

/// The first byte of every value; a later encoding gets another number.
pub const ENCODING_VERSION: u8 = 1;

/// Bytes of the longest LEB128 encoding of a `u64`.
pub const VARINT_BYTES_MAX: usize = 10;

/// Why a stored value could not be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodeError(String);

impl DecodeError {
    /// An error saying `message`.
    pub fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Writes one value.
pub struct Encoder {
    /// The bytes so far.
    bytes: Vec<u8>,
}

impl Encoder {
    /// A value with room for `capacity_bytes`, its version byte written.
    pub fn with_capacity(capacity_bytes: usize) -> Self {
        let mut bytes = Vec::with_capacity(capacity_bytes);
        bytes.push(ENCODING_VERSION);
        Self { bytes }
    }

    /// Appends `value` as unsigned LEB128.
    pub fn u64(&mut self, mut value: u64) {
        while value >= 0x80 {
            self.bytes.push((value as u8) | 0x80);
            value >>= 7;
        }
        self.bytes.push(value as u8);
    }

    /// Appends `value` in zigzag form: 0, -1, 1, -2, ... become 0, 1, 2, 3, ...
    pub fn i64(&mut self, value: i64) {
        self.u64(((value << 1) ^ (value >> 63)) as u64);
    }

    /// Appends `value` as its length, then its bytes.
    pub fn str(&mut self, value: &str) {
        self.u64(value.len() as u64);
        self.bytes.extend_from_slice(value.as_bytes());
    }

    /// The value.
    pub fn finish(self) -> Vec<u8> {
        self.bytes
    }
}

/// Reads one value.
pub struct Decoder<'a> {
    /// The value's bytes.
    bytes: &'a [u8],
    /// Where the next read starts.
    position: usize,
}

impl<'a> Decoder<'a> {
    /// A reader of `bytes`, whose version byte must be [`ENCODING_VERSION`].
    pub fn new(bytes: &'a [u8]) -> Result<Self, DecodeError> {
        match bytes.first() {
            Some(&ENCODING_VERSION) => Ok(Self { bytes, position: 1 }),
            Some(version) => Err(DecodeError(format!(
                "encoding version {version}; this plugin reads version {ENCODING_VERSION}"
            ))),
            None => Err(DecodeError("the value is empty".to_owned())),
        }
    }

    /// Reads an unsigned LEB128 integer.
    pub fn u64(&mut self) -> Result<u64, DecodeError> {
        let mut value: u64 = 0;
        for index in 0..VARINT_BYTES_MAX {
            let Some(&byte) = self.bytes.get(self.position) else {
                return Err(self.truncated());
            };
            self.position += 1;
            let bits = u64::from(byte & 0x7f);
            // The tenth byte may only carry the top bit of a u64.
            if index == VARINT_BYTES_MAX - 1 && bits > 1 {
                return Err(DecodeError(format!("an integer overflows at byte {}", self.position)));
            }
            value |= bits << (7 * index);
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(DecodeError(format!("an integer runs past ten bytes at byte {}", self.position)))
    }

    /// Reads a zigzag-encoded signed integer.
    pub fn i64(&mut self) -> Result<i64, DecodeError> {
        let zigzag = self.u64()?;
        Ok(((zigzag >> 1) as i64) ^ -((zigzag & 1) as i64))
    }

    /// Reads a count of at most `max` items.
    pub fn count(&mut self, what: &str, max: usize) -> Result<usize, DecodeError> {
        let count = self.u64()?;
        match usize::try_from(count) {
            Ok(count) if count <= max => Ok(count),
            _ => Err(DecodeError(format!("{count} {what}; at most {max} are kept"))),
        }
    }

    /// Reads a string of at most `bytes_max` bytes.
    pub fn str(&mut self, bytes_max: usize) -> Result<&'a str, DecodeError> {
        let len = self.count("bytes in a string", bytes_max)?;
        let end = self.position.checked_add(len).filter(|&end| end <= self.bytes.len());
        let Some(end) = end else {
            return Err(self.truncated());
        };
        let text = std::str::from_utf8(&self.bytes[self.position..end])
            .map_err(|_| DecodeError(format!("invalid UTF-8 at byte {}", self.position)))?;
        self.position = end;
        Ok(text)
    }

    /// Succeeds when every byte was read.
    pub fn finish(self) -> Result<(), DecodeError> {
        if self.position == self.bytes.len() {
            Ok(())
        } else {
            Err(DecodeError(format!(
                "{} bytes left over after the value",
                self.bytes.len() - self.position
            )))
        }
    }

    fn truncated(&self) -> DecodeError {
        DecodeError(format!("the value ends early, at byte {}", self.position))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_and_strings_round_trip_at_their_extremes() {
        let mut encoder = Encoder::with_capacity(64);
        for value in [0, 1, 127, 128, u64::MAX] {
            encoder.u64(value);
        }
        for value in [0, -1, 1, i64::MIN, i64::MAX] {
            encoder.i64(value);
        }
        encoder.str("D11-手机");
        let bytes = encoder.finish();
        let mut decoder = Decoder::new(&bytes).unwrap();
        for value in [0, 1, 127, 128, u64::MAX] {
            assert_eq!(decoder.u64(), Ok(value));
        }
        for value in [0, -1, 1, i64::MIN, i64::MAX] {
            assert_eq!(decoder.i64(), Ok(value));
        }
        assert_eq!(decoder.str(64), Ok("D11-手机"));
        assert_eq!(decoder.finish(), Ok(()));
    }

    #[test]
    fn small_numbers_take_one_byte() {
        let mut encoder = Encoder::with_capacity(8);
        encoder.u64(127);
        encoder.i64(-64);
        assert_eq!(encoder.finish().len(), 3);
    }

    #[test]
    fn damaged_values_are_errors_not_panics() {
        assert!(Decoder::new(&[]).is_err());
        assert!(Decoder::new(&[ENCODING_VERSION + 1]).is_err());
        let truncated = [ENCODING_VERSION, 0x80];
        assert!(Decoder::new(&truncated).unwrap().u64().is_err());
        let overlong =
            [ENCODING_VERSION, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f];
        assert!(Decoder::new(&overlong).unwrap().u64().is_err());
        let long_string = [ENCODING_VERSION, 5, b'a'];
        assert!(Decoder::new(&long_string).unwrap().str(64).is_err());
        assert!(Decoder::new(&[ENCODING_VERSION, 65]).unwrap().str(64).is_err());
        let not_utf8 = [ENCODING_VERSION, 1, 0xff];
        assert!(Decoder::new(&not_utf8).unwrap().str(64).is_err());
        assert!(Decoder::new(&[ENCODING_VERSION, 0]).unwrap().finish().is_err());
    }
}
