//! Byte encodings shared by the log, the state machine and the Raft wire.
//!
//! Three rules live here so nobody has to remember them elsewhere:
//!
//! * **Values** are bincode 2 (serde mode, `config::standard()`), and anything stored on disk is
//!   wrapped in a versioned envelope (an enum whose variants are only ever appended), because
//!   bincode is not self-describing: adding a field to a struct breaks old bytes.
//! * **Keys** are big-endian fixed-width integers, so sled's byte order is numeric order.
//! * **Every decode is bounded by the bytes it is given** ([`decode`]), network and disk alike.
//!
//! # Why a decode needs a limit, and why this one is enough
//!
//! bincode reads a `String` (and a serde byte buffer) as `Vec::<u8>::decode`: it reads the length
//! prefix, allocates `vec![0u8; len]`, and only then reads `len` bytes, which is when a
//! `SliceReader` notices that the input is shorter (`DecodeError::UnexpectedEnd`). Without a
//! limit, a 17-byte body whose length prefix says 2^62 makes the process ask for 4 EiB and abort.
//! With `config().with_limit::<N>()`, every primitive first *claims* bytes
//! (`Decoder::claim_bytes_read`: a `u64` claims 8, a `u32` 4, a `u8` or `bool` 1, a `u128` 16) and
//! the string claims its `len` (`claim_container_read::<u8>`) *before* the allocation; a running
//! total above `N` is `DecodeError::LimitExceeded`. So with a limit of `N`:
//!
//! * a length-prefixed string or byte buffer allocates at most `N` bytes, and only as an untouched
//!   zeroed allocation (`alloc_zeroed`), which fails on the next read when `len` exceeds the input;
//! * a serde sequence or map never claims its length; serde itself preallocates at most 1 MiB for
//!   one (`size_hint::cautious`) and then needs at least one input byte per element, so a length
//!   prefix costs at most 1 MiB per sequence being decoded (the nesting of our types is fixed);
//! * everything else in memory is built from bytes actually read, element by element.
//!
//! The limit must not reject a valid encoding. In bincode's varint encoding a primitive takes at
//! least one byte and claims at most 16 (`u128`), a string's content claims one per byte, and
//! nothing claims without reading: a valid encoding of `n` bytes claims at most
//! [`CLAIMS_PER_BYTE_MAX`]` × n`. bincode's limit is a const generic, so [`decode`] picks the
//! smallest of a few const tiers ([`LIMIT_TIERS`], a factor of 4 apart) at or above that: a
//! length prefix can make a decode of `n` bytes allocate at most `4 × 16 × n` bytes (at least the
//! smallest tier, 64 KiB), never pages it did not receive. The Raft listener caps each body
//! (`network::router`), which caps the tier. Input beyond the largest tier's reach is refused
//! ([`CodecError::TooLarge`]) without decoding.
//!
//! The limit only affects decoding: the bytes written are the same as without it.
//!
//! # Nesting
//!
//! A claim limit does not bound recursion. `Command::Batch` holds `Request`s, which hold
//! `Command`s (and `Response::Batch` holds `Response`s), so a few bytes per level could nest a
//! batch a million deep and overflow the decoding thread's stack, which aborts the process. Those
//! fields decode through [`nesting_bounded`], which refuses more than [`NESTING_MAX`] levels on
//! one thread. No proposer nests a batch at all (`apply` treats a nested one as empty).

use std::cell::Cell;

use serde::de::{DeserializeOwned, Error as _};
use serde::{Deserialize, Deserializer, Serialize};

/// The one bincode configuration used everywhere (disk and wire must agree). Decoding adds a
/// limit ([`decode`]), which does not change the format.
fn config() -> bincode::config::Configuration {
    bincode::config::standard()
}

/// The most bytes bincode claims per input byte of a valid encoding (a `u128` or `i128` written
/// as a one-byte varint claims 16; see the module docs).
pub const CLAIMS_PER_BYTE_MAX: usize = 16;

/// The claim limits [`decode`] chooses from, smallest first: 64 KiB × 4^k. The largest serves
/// inputs up to [`DECODE_BYTES_MAX`].
pub const LIMIT_TIERS: [usize; 11] =
    [64 << 10, 256 << 10, 1 << 20, 4 << 20, 16 << 20, 64 << 20, 256 << 20, 1 << 30, 4 << 30, 16 << 30, 64 << 30];

/// The largest input [`decode`] accepts: the largest tier divided by [`CLAIMS_PER_BYTE_MAX`]
/// (4 GiB, which is also the cap on a received snapshot).
pub const DECODE_BYTES_MAX: usize = LIMIT_TIERS[LIMIT_TIERS.len() - 1] / CLAIMS_PER_BYTE_MAX;

/// A failure to turn bytes into a value or back.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// The value could not be encoded (a serde attribute bincode cannot carry).
    #[error("encode: {0}")]
    Encode(#[from] bincode::error::EncodeError),
    /// The bytes are not a valid encoding of the expected type (a length beyond the input is
    /// `LimitExceeded` or `UnexpectedEnd`).
    #[error("decode: {0}")]
    Decode(#[from] bincode::error::DecodeError),
    /// The input is larger than any decode limit serves ([`DECODE_BYTES_MAX`]).
    #[error("decode: {len} bytes is more than the {max} a decode accepts", max = DECODE_BYTES_MAX)]
    TooLarge {
        /// The input's length.
        len: usize,
    },
}

/// Encodes `value` with the shared configuration.
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, CodecError> {
    Ok(bincode::serde::encode_to_vec(value, config())?)
}

/// The claim limit for decoding `len` bytes: the smallest tier that a valid encoding of that
/// length cannot exceed, or `None` past [`DECODE_BYTES_MAX`].
pub fn claim_limit(len: usize) -> Option<usize> {
    let claims_max = len.checked_mul(CLAIMS_PER_BYTE_MAX)?;
    LIMIT_TIERS.iter().copied().find(|tier| *tier >= claims_max)
}

/// Decodes a whole `T` from `bytes`, with a claim limit chosen from their length (see the
/// module docs): whatever the bytes say, the decode allocates at most [`claim_limit`] bytes
/// for a length prefix.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    macro_rules! with_tier {
        ($($i:literal),*) => {
            match claim_limit(bytes.len()) {
                $(Some(n) if n == LIMIT_TIERS[$i] => decode_limited::<T, { LIMIT_TIERS[$i] }>(bytes),)*
                _ => Err(CodecError::TooLarge { len: bytes.len() }),
            }
        };
    }
    with_tier!(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10)
}

/// Decodes with the claim limit `N` (bincode's limit is a const generic).
fn decode_limited<T: DeserializeOwned, const N: usize>(bytes: &[u8]) -> Result<T, CodecError> {
    let (value, _read) = bincode::serde::decode_from_slice(bytes, config().with_limit::<N>())?;
    Ok(value)
}

/// The deepest nesting of recursive values ([`nesting_bounded`]) a decode accepts.
pub const NESTING_MAX: usize = 16;

thread_local! {
    /// How many [`nesting_bounded`] values the decode on this thread is inside.
    static NESTING: Cell<usize> = const { Cell::new(0) };
}

/// Leaves one level of nesting when dropped (also when the inner decode fails).
struct Level;

impl Drop for Level {
    fn drop(&mut self) {
        NESTING.with(|n| n.set(n.get().saturating_sub(1)));
    }
}

/// A serde `deserialize_with` for a field through which a type recurses: decodes it normally,
/// unless this thread is already [`NESTING_MAX`] such fields deep (see the module docs). The
/// encoding is unchanged.
pub fn nesting_bounded<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    let depth = NESTING.with(|n| n.get());
    if depth >= NESTING_MAX {
        return Err(D::Error::custom(format!("values nested deeper than {NESTING_MAX} levels")));
    }
    NESTING.with(|n| n.set(depth + 1));
    let _level = Level;
    T::deserialize(deserializer)
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

    /// A varint `u64` in bincode's standard encoding: 0xff marks 16 bytes, 0xfd 8, 0xfc 4.
    fn huge_len(n: u64) -> Vec<u8> {
        [&[0xfd][..], &n.to_le_bytes()].concat()
    }

    #[test]
    fn a_string_length_beyond_the_input_is_refused_before_any_allocation() {
        // 2^62 would abort the process if bincode allocated it (the issue-15 decode bomb).
        for len in [1u64 << 62, u64::MAX, (64 << 10) + 1, 1_000] {
            let bytes = huge_len(len);
            assert!(decode::<String>(&bytes).is_err(), "length {len}");
            assert!(decode::<(u64, String)>(&[&[7u8][..], &bytes].concat()).is_err(), "length {len}");
        }
    }

    #[test]
    fn a_sequence_length_beyond_the_input_is_refused() {
        for len in [1u64 << 62, u64::MAX] {
            assert!(decode::<Vec<(u64, String)>>(&huge_len(len)).is_err());
            assert!(decode::<std::collections::BTreeMap<u64, Vec<u8>>>(&huge_len(len)).is_err());
        }
    }

    #[test]
    fn the_worst_claim_ratio_still_decodes() {
        // One-byte varints that claim 16 bytes each: the densest claims a valid encoding has.
        let values: Vec<u128> = vec![1; 100_000];
        assert_eq!(decode::<Vec<u128>>(&encode(&values).unwrap()).unwrap(), values);
        let small: Vec<u128> = vec![0; 3];
        assert_eq!(decode::<Vec<u128>>(&encode(&small).unwrap()).unwrap(), small);
    }

    #[test]
    fn a_batch_nested_a_hundred_thousand_deep_is_refused_without_overflowing_the_stack() {
        use crate::command::{Command, Request};
        let leaf = Request { request_id: String::new(), now_ms: 0, command: Command::Batch(vec![]) };
        let enc = encode(&leaf).unwrap();
        assert_eq!(enc.last(), Some(&0), "an empty batch ends with its length, 0");
        // One level: the same request whose batch holds one request (length 1).
        let level = [&enc[..enc.len() - 1], &[1u8][..]].concat();
        let nested = |depth: usize| [level.repeat(depth), enc.clone()].concat();
        assert!(decode::<Request>(&nested(100_000)).is_err());
        assert!(decode::<Request>(&nested(NESTING_MAX - 1)).is_ok(), "shallow nesting still decodes");
        assert!(decode::<Request>(&nested(NESTING_MAX)).is_err());
        // The counter is back at zero: a plain batch still decodes on this thread.
        assert!(decode::<Request>(&nested(1)).is_ok());
    }

    #[test]
    fn tiers_cover_every_length_up_to_the_max_and_no_further() {
        assert_eq!(claim_limit(0), Some(64 << 10));
        assert_eq!(claim_limit(17), Some(64 << 10));
        assert_eq!(claim_limit(4096), Some(64 << 10));
        assert_eq!(claim_limit(4097), Some(256 << 10));
        assert_eq!(claim_limit(DECODE_BYTES_MAX), Some(64 << 30));
        assert_eq!(claim_limit(DECODE_BYTES_MAX + 1), None);
        for len in [1usize, 1000, 70_000, 5 << 20, 100 << 20] {
            let limit = claim_limit(len).unwrap();
            assert!(limit >= len * CLAIMS_PER_BYTE_MAX && limit <= 4 * len * CLAIMS_PER_BYTE_MAX.max(1) + (64 << 10));
        }
    }
}
