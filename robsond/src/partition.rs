//! Stream → partition routing: `partition = stable_hash(stream_key) % P`.
//!
//! The hash is FNV-1a (64 bit) over the key's UTF-8 bytes: fixed by this
//! code, not by a library version or a process seed, so every instance and
//! every release routes a stream to the same partition for a given P.

/// FNV-1a 64-bit hash of `key`.
pub fn stable_hash(key: &str) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    key.bytes()
        .fold(OFFSET, |h, b| (h ^ u64::from(b)).wrapping_mul(PRIME))
}

/// The partition of `stream_key` among `partitions` (≥ 1).
pub fn partition_of(stream_key: &str, partitions: usize) -> usize {
    (stable_hash(stream_key) % partitions.max(1) as u64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_is_the_published_fnv1a_value() {
        // Reference values of FNV-1a 64.
        assert_eq!(stable_hash(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(stable_hash("a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn every_key_lands_inside_the_partition_range() {
        for p in [1, 2, 8, 1024] {
            for i in 0..200 {
                assert!(partition_of(&format!("order:{i}"), p) < p);
            }
        }
    }

    #[test]
    fn keys_spread_over_partitions() {
        let mut counts = [0usize; 8];
        for i in 0..8000 {
            counts[partition_of(&format!("order:{i:08}"), 8)] += 1;
        }
        assert!(counts.iter().all(|&c| c > 700), "{counts:?}");
    }
}
