//! Big-endian, length-prefixed binary encoding shared by the identity,
//! transparency and suite 1 formats. Every reader is strict: a short input, a
//! length past the end or (for whole records) trailing bytes is an error.

/// The input ended early, or a length or tag was out of range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Truncated;

/// Appends encoded fields to a byte vector.
#[derive(Debug, Default)]
pub(crate) struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    pub(crate) fn with_capacity(n: usize) -> Self {
        Self {
            buf: Vec::with_capacity(n),
        }
    }
    pub(crate) fn u8(&mut self, v: u8) -> &mut Self {
        self.buf.push(v);
        self
    }
    pub(crate) fn u16(&mut self, v: u16) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub(crate) fn u64(&mut self, v: u64) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub(crate) fn bytes(&mut self, v: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(v);
        self
    }
    /// `u16` big-endian length, then the bytes. Callers only pass values whose
    /// length is bounded far below 65 536 by their types (user ids ≤ 128,
    /// channel and event names ≤ 200); a longer one is cut to that prefix
    /// length's range rather than written inconsistently.
    pub(crate) fn str16(&mut self, v: &[u8]) -> &mut Self {
        let n = u16::try_from(v.len()).unwrap_or(u16::MAX);
        self.u16(n);
        self.bytes(&v[..usize::from(n)])
    }
    pub(crate) fn as_slice(&self) -> &[u8] {
        &self.buf
    }
    pub(crate) fn into_vec(self) -> Vec<u8> {
        self.buf
    }
}

/// Reads fields from a byte slice, front to back.
#[derive(Debug)]
pub(crate) struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(input: &'a [u8]) -> Self {
        Self { rest: input }
    }
    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], Truncated> {
        if self.rest.len() < n {
            return Err(Truncated);
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }
    pub(crate) fn array<const N: usize>(&mut self) -> Result<[u8; N], Truncated> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }
    pub(crate) fn u8(&mut self) -> Result<u8, Truncated> {
        Ok(self.array::<1>()?[0])
    }
    pub(crate) fn u16(&mut self) -> Result<u16, Truncated> {
        Ok(u16::from_be_bytes(self.array()?))
    }
    pub(crate) fn u64(&mut self) -> Result<u64, Truncated> {
        Ok(u64::from_be_bytes(self.array()?))
    }
    pub(crate) fn str16(&mut self) -> Result<&'a [u8], Truncated> {
        let n = self.u16()?;
        self.take(usize::from(n))
    }
    /// Succeeds only if every byte was read.
    pub(crate) fn finish(&self) -> Result<(), Truncated> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(Truncated)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_strictness() {
        let mut w = Writer::default();
        w.u8(7).u16(0x0102).u64(3).str16(b"abc").bytes(&[9, 9]);
        let bytes = w.into_vec();
        assert_eq!(hex::encode(&bytes), "070102000000000000000300036162630909");
        let mut r = Reader::new(&bytes);
        assert_eq!(r.u8(), Ok(7));
        assert_eq!(r.u16(), Ok(0x0102));
        assert_eq!(r.u64(), Ok(3));
        assert_eq!(r.str16(), Ok(&b"abc"[..]));
        assert_eq!(r.finish(), Err(Truncated));
        assert_eq!(r.array::<2>(), Ok([9, 9]));
        assert_eq!(r.finish(), Ok(()));
        assert_eq!(r.u8(), Err(Truncated));
        // A length past the end.
        assert_eq!(Reader::new(&[0, 5, 1]).str16(), Err(Truncated));
    }
}
