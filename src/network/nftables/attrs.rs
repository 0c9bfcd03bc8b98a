//! Netlink attribute encoding for nf_tables messages.
//!
//! nf_tables speaks plain netlink attributes (type-length-value, each
//! padded to four bytes) with integers in network byte order, except where
//! a value is compared with register contents, which the kernel keeps in
//! host order (marks, numgen results, ct state bits). [`Attrs`] writes
//! them into one growing buffer; a nested attribute is opened, filled and
//! then closed, which patches its length.

/// Nested attribute flag (NLA_F_NESTED).
const NLA_F_NESTED: u16 = 0x8000;

/// A buffer of netlink attributes under construction.
#[derive(Default)]
pub struct Attrs {
    buf: Vec<u8>,
}

/// An open nested attribute: where its header starts.
#[must_use = "a nested attribute must be closed"]
pub struct Nest(usize);

impl Attrs {
    /// An empty buffer.
    pub fn new() -> Self {
        Attrs::default()
    }

    /// The encoded attributes.
    pub fn into_bytes(self) -> Vec<u8> {
        self.buf
    }

    /// An attribute with raw bytes.
    pub fn bytes(&mut self, kind: u16, value: &[u8]) -> &mut Self {
        let len = 4 + value.len();
        self.buf
            .extend_from_slice(&u16::try_from(len).unwrap_or(u16::MAX).to_ne_bytes());
        self.buf.extend_from_slice(&kind.to_ne_bytes());
        self.buf.extend_from_slice(value);
        self.pad();
        self
    }

    /// A NUL-terminated string.
    pub fn string(&mut self, kind: u16, value: &str) -> &mut Self {
        let mut v = Vec::with_capacity(value.len() + 1);
        v.extend_from_slice(value.as_bytes());
        v.push(0);
        self.bytes(kind, &v)
    }

    /// A 32-bit integer in network byte order.
    pub fn be32(&mut self, kind: u16, value: u32) -> &mut Self {
        self.bytes(kind, &value.to_be_bytes())
    }

    /// A 64-bit integer in network byte order.
    pub fn be64(&mut self, kind: u16, value: u64) -> &mut Self {
        self.bytes(kind, &value.to_be_bytes())
    }

    /// Opens a nested attribute.
    pub fn nest(&mut self, kind: u16) -> Nest {
        let at = self.buf.len();
        self.buf.extend_from_slice(&[0, 0]);
        self.buf
            .extend_from_slice(&(kind | NLA_F_NESTED).to_ne_bytes());
        Nest(at)
    }

    /// Closes a nested attribute, fixing its length.
    pub fn end(&mut self, nest: Nest) -> &mut Self {
        let len = u16::try_from(self.buf.len() - nest.0).unwrap_or(u16::MAX);
        self.buf[nest.0..nest.0 + 2].copy_from_slice(&len.to_ne_bytes());
        self
    }

    fn pad(&mut self) {
        while !self.buf.len().is_multiple_of(4) {
            self.buf.push(0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_nul_terminated_and_padded() {
        let mut a = Attrs::new();
        a.string(1, "kelp");
        assert_eq!(
            a.into_bytes(),
            [9, 0, 1, 0, b'k', b'e', b'l', b'p', 0, 0, 0, 0]
        );
    }

    #[test]
    fn nests_carry_their_total_length_and_the_nested_flag() {
        let mut a = Attrs::new();
        let n = a.nest(2);
        a.be32(1, 7);
        a.end(n);
        let b = a.into_bytes();
        assert_eq!(u16::from_ne_bytes([b[0], b[1]]), 12);
        assert_eq!(u16::from_ne_bytes([b[2], b[3]]), 2 | NLA_F_NESTED);
        assert_eq!(&b[8..12], &7u32.to_be_bytes());
    }
}
