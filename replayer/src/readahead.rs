//! Objects fetched ahead of a replay: small objects are fetched whole, several at once, so
//! that a partition made of many small objects is bound by Redis writes, not by store round
//! trips. Memory stays bounded: at most [`READAHEAD_OBJECTS`] objects queued and
//! [`READAHEAD_BYTES`] of bodies held per partition; larger objects are read as before (footer,
//! then only the pages needed).

use std::collections::VecDeque;

use bytes::Bytes;
use streamtier_schemas::StreamId;
use streamtier_tiers::store::Store;
use tokio_util::task::AbortOnDropHandle;

use crate::archive::ObjectError;
use streamtier_tiers::archive::{ObjectLister, ObjectRef};

/// Objects at most this large are fetched whole, ahead of need: one request instead of a
/// footer read and page reads, and a narrow range wastes at most this much.
pub const SMALL_OBJECT: u64 = 256 * 1024;
/// Objects queued ahead of the one being read, per partition.
pub const READAHEAD_OBJECTS: usize = 32;
/// Bytes of small objects fetched ahead and held, per partition.
pub const READAHEAD_BYTES: u64 = 4 << 20;

type Fetch = AbortOnDropHandle<streamtier_tiers::Result<Bytes>>;

/// The next objects of a partition, listed and (when small) fetched ahead.
pub struct Readahead {
    store: Store,
    lister: ObjectLister,
    queue: VecDeque<(ObjectRef, Option<Fetch>)>,
    /// Bytes of the small objects being fetched or held.
    held: u64,
    listed_all: bool,
}

/// An object to read next, and its whole body when it was fetched ahead.
pub type Next = (ObjectRef, Option<Result<Bytes, ObjectError>>);

impl Readahead {
    /// Reads ahead of `lister`'s objects in `store`.
    pub fn new(store: Store, lister: ObjectLister) -> Self {
        Self {
            store,
            lister,
            queue: VecDeque::new(),
            held: 0,
            listed_all: false,
        }
    }

    /// The next object that may hold ids after `after`, in id order; `None` when the listing
    /// is exhausted.
    ///
    /// # Errors
    /// The store's errors while listing (a failed fetch of a body is handed on with its object).
    pub async fn next(&mut self, after: Option<StreamId>) -> streamtier_tiers::Result<Option<Next>> {
        self.fill(after).await?;
        let Some((object, fetch)) = self.queue.pop_front() else {
            return Ok(None);
        };
        let body = match fetch {
            None => None,
            Some(fetch) => {
                self.held -= object.size;
                Some(match fetch.await {
                    Ok(Ok(body)) => Ok(body),
                    Ok(Err(e)) => Err(ObjectError::from(e)),
                    Err(e) => Err(format!("the read of the object stopped: {e}").into()),
                })
            }
        };
        // Keep the next objects coming while this one is decoded and written.
        self.start_fetches();
        Ok(Some((object, body)))
    }

    async fn fill(&mut self, after: Option<StreamId>) -> streamtier_tiers::Result<()> {
        while !self.listed_all && self.queue.len() < READAHEAD_OBJECTS {
            match self.lister.next_after(after).await? {
                Some(object) => self.queue.push_back((object, None)),
                None => self.listed_all = true,
            }
        }
        self.start_fetches();
        Ok(())
    }

    /// Starts fetching the queued small objects, in order, while the byte budget allows.
    fn start_fetches(&mut self) {
        for (object, fetch) in &mut self.queue {
            if fetch.is_some() || object.size > SMALL_OBJECT {
                continue;
            }
            if self.held + object.size > READAHEAD_BYTES {
                break;
            }
            self.held += object.size;
            let (store, key) = (self.store.clone(), object.key.clone());
            *fetch = Some(AbortOnDropHandle::new(tokio::spawn(async move {
                store.get(&key).await
            })));
        }
    }
}
