//! Reading response bodies with a size cap: a server (Twilio, a proxy in between, or an identity
//! server named in a channel) cannot make the operator buffer an unbounded body.
//!
//! A `Content-Length` over the cap is refused before any of the body is read; a body without
//! one (chunked) is read chunk by chunk and abandoned as soon as it passes the cap. Either way
//! the connection is dropped, not drained.

/// The largest Twilio response body read: 8 MiB. The largest page the client asks for (1000
/// WhatsApp senders) is a few hundred KiB.
pub const MAX_TWILIO_BODY_BYTES: usize = 8 * 1024 * 1024;

/// The largest identity-server response body read: 1 MiB (a token response is a few KiB).
pub const MAX_IDENTITY_BODY_BYTES: usize = 1024 * 1024;

/// Why a body was not read.
#[derive(Debug)]
pub(crate) enum BodyError {
    /// The body is longer than the cap (announced by `Content-Length`, or seen while reading).
    TooLarge,
    /// Reading failed (connection reset, timeout, …).
    Read(reqwest::Error),
}

/// Collects body chunks up to `limit` bytes. Pure: the part of [`read_limited`] that decides.
#[derive(Debug)]
pub(crate) struct Collector {
    limit: usize,
    buf: Vec<u8>,
}

impl Collector {
    /// A collector for at most `limit` bytes, preallocating `expected` (a `Content-Length`)
    /// when it is within the limit.
    pub(crate) fn new(limit: usize, expected: Option<u64>) -> Result<Self, BodyError> {
        let expected = match expected {
            Some(n) if n > limit as u64 => return Err(BodyError::TooLarge),
            Some(n) => usize::try_from(n).unwrap_or(limit),
            None => 0,
        };
        // Bounded by `limit`; a lying Content-Length costs at most that much.
        Ok(Self { limit, buf: Vec::with_capacity(expected.min(limit)) })
    }

    /// Appends a chunk; [`BodyError::TooLarge`] (and nothing kept of it) once the total would
    /// exceed the limit.
    pub(crate) fn push(&mut self, chunk: &[u8]) -> Result<(), BodyError> {
        if chunk.len() > self.limit - self.buf.len() {
            return Err(BodyError::TooLarge);
        }
        self.buf.extend_from_slice(chunk);
        Ok(())
    }

    /// The bytes collected.
    pub(crate) fn finish(self) -> Vec<u8> {
        self.buf
    }
}

/// Reads `response`'s body, at most `limit` bytes of it.
pub(crate) async fn read_limited(mut response: reqwest::Response, limit: usize) -> Result<Vec<u8>, BodyError> {
    let mut collector = Collector::new(limit, response.content_length())?;
    while let Some(chunk) = response.chunk().await.map_err(BodyError::Read)? {
        collector.push(&chunk)?;
    }
    Ok(collector.finish())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn an_announced_length_over_the_limit_is_refused_before_reading() {
        assert!(matches!(Collector::new(10, Some(11)), Err(BodyError::TooLarge)));
        assert!(matches!(Collector::new(10, Some(u64::MAX)), Err(BodyError::TooLarge)));
        let mut c = Collector::new(10, Some(10)).expect("within the limit");
        c.push(b"0123456789").expect("exactly the limit");
        assert_eq!(&c.finish()[..], b"0123456789");
    }

    proptest! {
        /// Any sequence of chunks: the body is kept whole when its total is within the limit,
        /// refused as soon as it passes it, and the collector never holds more than the limit.
        #[test]
        fn chunks_are_kept_up_to_the_limit(
            limit in 0usize..4096,
            chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..1024), 0..16),
            announced in proptest::option::of(0u64..8192),
        ) {
            let total: usize = chunks.iter().map(Vec::len).sum();
            let mut collector = match Collector::new(limit, announced) {
                Ok(c) => c,
                Err(_) => {
                    prop_assert!(announced.is_some_and(|n| n > limit as u64));
                    return Ok(());
                }
            };
            let mut refused = false;
            for chunk in &chunks {
                if collector.push(chunk).is_err() {
                    refused = true;
                    break;
                }
                prop_assert!(collector.buf.len() <= limit);
            }
            prop_assert_eq!(refused, total > limit);
            if !refused {
                prop_assert_eq!(collector.finish(), chunks.concat());
            }
        }
    }
}
