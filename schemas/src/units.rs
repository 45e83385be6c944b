//! Sizes as people write them in settings: `128MiB`, `8MB`, `4096` (bytes).

/// The bytes of a size such as `128MiB`, `8MB`, `2GiB` or `4096`; `None` when it is not one
/// (or overflows).
pub fn size_bytes(value: &str) -> Option<u64> {
    let v = value.trim();
    let split = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let (num, unit) = v.split_at(split);
    let n: u64 = num.parse().ok()?;
    let mult: u64 = match unit.trim() {
        "" | "B" => 1,
        "KB" | "kB" => 1_000,
        "KiB" => 1 << 10,
        "MB" => 1_000_000,
        "MiB" => 1 << 20,
        "GB" => 1_000_000_000,
        "GiB" => 1 << 30,
        _ => return None,
    };
    n.checked_mul(mult)
}

#[cfg(test)]
mod tests {
    use super::size_bytes;

    #[test]
    fn sizes_parse_with_decimal_and_binary_units() {
        assert_eq!(size_bytes("4096"), Some(4096));
        assert_eq!(size_bytes(" 128MiB "), Some(128 << 20));
        assert_eq!(size_bytes("8MB"), Some(8_000_000));
        assert_eq!(size_bytes("2GiB"), Some(2 << 30));
        for bad in ["", "MiB", "12 parsecs", "-1", "99999999999999999999GiB"] {
            assert_eq!(size_bytes(bad), None, "{bad}");
        }
    }
}
