//! The archive read transaction: `MULTI`, the bookkeeping script, `XRANGE`, `EXEC`, so the
//! entries, the stream's bookkeeping and the chain fence are read atomically.

use super::resp::{Failure, Request};
use super::script::{is_noscript, By, READ};
pub(crate) use super::xrange::ReadReply;
use super::xrange::XrangeTx;
use super::RawPool;

impl RawPool {
    /// Runs the read transaction for entries in `range` (`XRANGE` bounds as given).
    pub(crate) async fn read(
        &self,
        asking: bool,
        stream: &str,
        chain_key: &str,
        range: (&str, &str),
        count: usize,
    ) -> Result<ReadReply, Failure> {
        let count = count.to_string();
        let mut by = By::Hash;
        loop {
            let mut request = Request::default();
            request
                .asking(asking)
                .push(&[b"MULTI"])
                .eval(&READ, by, &[stream.as_bytes(), chain_key.as_bytes()], &[])
                .push(&[
                    b"XRANGE",
                    stream.as_bytes(),
                    range.0.as_bytes(),
                    range.1.as_bytes(),
                    b"COUNT",
                    count.as_bytes(),
                ])
                .push(&[b"EXEC"]);
            // Only reads: on a broken reused connection it is simply sent again on a new one.
            // The entries are parsed as the reply arrives.
            let (con, reply, tx) = self.exchange_with(&request, || XrangeTx::new(asking)).await?;
            // The reply was read whole: the connection is in step whatever it says.
            self.give_back(con);
            match tx.finish(&reply) {
                // The server lost its script cache (restart, failover, SCRIPT FLUSH): the body
                // loads it again.
                Err(f) if by == By::Hash && is_noscript(&f) => by = By::Body,
                other => return other,
            }
        }
    }
}
