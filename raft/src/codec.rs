//! Byte encodings shared by the log, the state machine and the Raft wire.
//!
//! Two rules live here so nobody has to remember them elsewhere:
//!
//! * **Values** are bincode 2 (serde mode, `config::standard()`), and anything stored on disk is
//!   wrapped in a versioned envelope (an enum whose variants are only ever appended), because
//!   bincode is not self-describing: adding a field to a struct breaks old bytes.
//! * **Keys** are big-endian fixed-width integers, so sled's byte order is numeric order.

use serde::de::DeserializeOwned;
use serde::Serialize;

/// The one bincode configuration used everywhere (disk and wire must agree).
fn config() -> bincode::config::Configuration {
    bincode::config::standard()
}

/// A failure to turn bytes into a value or back.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// The value could not be encoded (a serde attribute bincode cannot carry).
    #[error("encode: {0}")]
    Encode(#[from] bincode::error::EncodeError),
    /// The bytes are not a valid encoding of the expected type.
    #[error("decode: {0}")]
    Decode(#[from] bincode::error::DecodeError),
}

/// Encodes `value` with the shared configuration.
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, CodecError> {
    Ok(bincode::serde::encode_to_vec(value, config())?)
}

/// Decodes a whole `T` from `bytes`.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    let (value, _read) = bincode::serde::decode_from_slice(bytes, config())?;
    Ok(value)
}

/// A big-endian key for `n`: byte order equals numeric order.
pub fn key_u64(n: u64) -> [u8; 8] {
    n.to_be_bytes()
}

/// Reads a big-endian `u64` key written by [`key_u64`].
pub fn parse_key_u64(bytes: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(bytes.get(..8)?.try_into().ok()?))
}

/// A big-endian, order-preserving key for a signed millisecond timestamp.
pub fn key_i64(n: i64) -> [u8; 8] {
    ((n as u64) ^ (1 << 63)).to_be_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn u64_keys_sort_numerically() {
        let mut keys: Vec<[u8; 8]> = [300u64, 2, 70_000, 1].iter().map(|n| key_u64(*n)).collect();
        keys.sort();
        let back: Vec<u64> = keys.iter().map(|k| parse_key_u64(k).unwrap()).collect();
        assert_eq!(back, vec![1, 2, 300, 70_000]);
    }

    #[test]
    fn i64_keys_sort_numerically_across_zero() {
        let mut keys: Vec<[u8; 8]> = [5i64, -1, 0, i64::MIN, i64::MAX].iter().map(|n| key_i64(*n)).collect();
        keys.sort();
        assert_eq!(keys[0], key_i64(i64::MIN));
        assert_eq!(keys[1], key_i64(-1));
        assert_eq!(keys[4], key_i64(i64::MAX));
    }

    #[test]
    fn round_trip_and_garbage() {
        let bytes = encode(&("a".to_string(), 7u64)).unwrap();
        let back: (String, u64) = decode(&bytes).unwrap();
        assert_eq!(back, ("a".to_string(), 7));
        assert!(decode::<(String, u64)>(&[0xff]).is_err());
    }
}
