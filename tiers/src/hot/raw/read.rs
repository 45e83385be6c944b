//! The archive read transaction: `MULTI`, the bookkeeping script by hash, `XRANGE`, `EXEC`,
//! the same transaction as the generic path, so both read the same thing atomically.

use super::resp::Request;
pub(crate) use super::xrange::ReadReply;
use super::xrange::XrangeTx;
use super::{failure, RawPool};
use crate::Result;

impl RawPool {
    /// Runs the read transaction for entries in `range` (`XRANGE` bounds as given).
    /// `Ok(None)` when the script is not loaded (`NOSCRIPT`): load it and ask again.
    pub(crate) async fn read(
        &self,
        stream: &str,
        chain_key: &str,
        script_sha: &str,
        range: (&str, &str),
        count: usize,
    ) -> Result<Option<ReadReply>> {
        let count = count.to_string();
        let mut request = Request::default();
        request
            .push(&[b"MULTI"])
            .push(&[
                b"EVALSHA",
                script_sha.as_bytes(),
                b"2",
                stream.as_bytes(),
                chain_key.as_bytes(),
            ])
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
        let (con, reply, tx) = self
            .exchange_with(&request, "read batch", stream, XrangeTx::new)
            .await?;
        // The reply was read whole: the connection is in step whatever it says.
        self.give_back(con);
        tx.finish(&reply).map_err(|f| failure("read batch", stream, f))
    }
}
