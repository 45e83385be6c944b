//! Where an object joins the archive chain, the step that keeps the chain free of duplicates
//! and holes (crate invariant 3): the object is created only if absent under its first id; a
//! created object must directly follow the chain end it was built on, or its writer removes it;
//! an object that already exists (another archiver, or an earlier attempt) is adopted.

use streamtier_schemas::{ObjectMeta, StreamId};
use streamtier_tiers::store::{PutOutcome, SpoolFile};
use tracing::{info, warn};

use crate::chain::{self, Chain};
use crate::metrics::Metrics;
use crate::rotation::Close;
use crate::worker::{Built, PartitionWorker, PassStats};
use crate::Result;

impl PartitionWorker {
    /// Stores the encoded object `spool` under `key` if absent, then moves the chain: after
    /// checking its place (created), or to the object found there (adopted).
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn store_object(
        &mut self,
        mut chain: Chain,
        key: String,
        spool: SpoolFile,
        meta: ObjectMeta,
        reason: Close,
        estimate: Option<(StreamId, u64)>,
        stats: &mut PassStats,
    ) -> Result<Built> {
        let (first, last, count) = (meta.first_id, meta.last_id, meta.entry_count);
        let size = spool.len();
        let outcome = self
            .ctx
            .store
            .put_spooled_if_absent(&key, spool, &meta.to_s3_metadata())
            .await
            .map_err(self.tier())?;
        match outcome {
            PutOutcome::Created => {
                if !self.verify_placement(&chain, &key, &meta).await? {
                    self.chain = None;
                    return Ok(Built::Resync);
                }
                info!(stream = %self.p.stream, object_key = %key, first_id = %first, last_id = %last,
                    num_entries = count, num_bytes = size, reason = reason.as_str(), "archived object");
                let m = &self.ctx.metrics;
                Metrics::add(&m.archived_entries, count);
                Metrics::add(&m.archived_bytes, size);
                Metrics::add(&m.archived_objects, 1);
                stats.entries += count;
                stats.objects += 1;
                stats.bytes += size;
                chain.advance(key.clone(), &meta, estimate);
            }
            PutOutcome::AlreadyExists => {
                // Another archiver (or our own earlier attempt) stored this object: adopt it.
                let theirs = chain::object_meta(&self.ctx.store, &self.p, &key).await?;
                info!(stream = %self.p.stream, object_key = %key, last_id = %theirs.last_id, "adopted existing object");
                Metrics::add(&self.ctx.metrics.adopted_objects, 1);
                stats.adopted += 1;
                chain.advance(key.clone(), &theirs, None);
                // What was read ahead may overlap what they archived: read again after it.
                self.carry = None;
            }
        }
        self.chain = Some(chain);
        self.untrimmed = true;
        Ok(Built::Stored)
    }

    /// After creating `key`, checks that it directly follows the chain end we built on and that
    /// nothing after it overlaps; a process that was paused past others' progress removes its
    /// own misplaced object instead of leaving a duplicate.
    async fn verify_placement(&self, chain: &Chain, key: &str, meta: &ObjectMeta) -> Result<bool> {
        let next = (self.p.archive(&self.ctx.store))
            .objects_after(chain.last_key.as_deref(), 2)
            .await
            .map_err(chain::tier(&self.p))?;
        let follows = next.first().map(|o| o.key.as_str()) == Some(key);
        let overlapped = next.get(1).is_some_and(|o| o.first_id <= meta.last_id);
        if follows && !overlapped {
            return Ok(true);
        }
        warn!(stream = %self.p.stream, object_key = %key, "chain moved while this object was built; removing it");
        self.ctx.store.delete(key).await.map_err(self.tier())?;
        Metrics::add(&self.ctx.metrics.removed_objects, 1);
        Ok(false)
    }
}
