//! Byte ranges of blob reads, resolved against the blob's size.

/// A requested range, as in `bytes=a-b`, `bytes=a-` or `bytes=-n`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteRange {
    FromTo(u64, u64),
    From(u64),
    Suffix(u64),
}

impl ByteRange {
    /// Parse a single-range `Range` header value. Multi-range requests are
    /// not supported and parse as `None`.
    pub fn parse(header: &str) -> Option<ByteRange> {
        let spec = header.trim().strip_prefix("bytes=")?;
        if spec.contains(',') {
            return None;
        }
        let (a, b) = spec.split_once('-')?;
        let (a, b) = (a.trim(), b.trim());
        match (a.is_empty(), b.is_empty()) {
            (false, false) => {
                let (s, e) = (a.parse().ok()?, b.parse().ok()?);
                (s <= e).then_some(ByteRange::FromTo(s, e))
            }
            (false, true) => a.parse().ok().map(ByteRange::From),
            (true, false) => b.parse().ok().map(ByteRange::Suffix),
            (true, true) => None,
        }
    }

    /// `(start, len)` within a blob of `size` bytes, or `None` when the range
    /// is not satisfiable.
    pub fn resolve(self, size: u64) -> Option<(u64, u64)> {
        match self {
            ByteRange::FromTo(s, e) if s < size => Some((s, e.min(size - 1) - s + 1)),
            ByteRange::From(s) if s < size => Some((s, size - s)),
            ByteRange::Suffix(n) if n > 0 && size > 0 => {
                let n = n.min(size);
                Some((size - n, n))
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_resolve() {
        assert_eq!(ByteRange::parse("bytes=0-9"), Some(ByteRange::FromTo(0, 9)));
        assert_eq!(ByteRange::parse("bytes=5-"), Some(ByteRange::From(5)));
        assert_eq!(ByteRange::parse("bytes=-3"), Some(ByteRange::Suffix(3)));
        assert_eq!(ByteRange::parse("bytes=9-0"), None);
        assert_eq!(ByteRange::parse("bytes=0-1,4-5"), None);
        assert_eq!(ByteRange::parse("items=0-1"), None);
        assert_eq!(ByteRange::FromTo(0, 99).resolve(10), Some((0, 10)));
        assert_eq!(ByteRange::FromTo(10, 12).resolve(10), None);
        assert_eq!(ByteRange::From(9).resolve(10), Some((9, 1)));
        assert_eq!(ByteRange::Suffix(3).resolve(10), Some((7, 3)));
        assert_eq!(ByteRange::Suffix(30).resolve(10), Some((0, 10)));
        assert_eq!(ByteRange::Suffix(0).resolve(10), None);
    }
}
