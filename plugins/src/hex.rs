//! Bytes as lowercase hex, the form of every digest the engine writes (config hashes, split and
//! weights pins, content hashes): one function instead of a `format!("{b:02x}")` per call site.
//! (The wire crate has its own, `cauda_proto::hex`: the engine knows nothing of the wire.)

/// Lowercase hex of a byte slice (or anything that derefs to one, such as a SHA-256 output).
pub trait ToHex {
    fn to_hex(&self) -> String;
}

impl ToHex for [u8] {
    fn to_hex(&self) -> String {
        use std::fmt::Write as _;
        self.iter()
            .fold(String::with_capacity(self.len() * 2), |mut out, b| {
                // Writing to a String cannot fail.
                let _ = write!(out, "{b:02x}");
                out
            })
    }
}

#[cfg(test)]
mod tests {
    use super::ToHex;

    #[test]
    fn two_lowercase_digits_a_byte() {
        assert_eq!([0u8; 0].to_hex(), "");
        assert_eq!([0x00u8, 0x0f, 0xa0, 0xff, 0x12].to_hex(), "000fa0ff12");
        let all: Vec<u8> = (0..=255).collect();
        let want: String = all.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(all.to_hex(), want);
    }
}
