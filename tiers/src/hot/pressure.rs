//! What a replay weighs on Redis: memory, and its target's backlog, read in one script on the
//! node that holds the target.

use super::raw::{self, Item};
use super::Hot;
use crate::{Error, Result};

/// Redis' memory and a target stream's backlog, at one instant.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pressure {
    /// `used_memory` of the node holding the target.
    pub used_memory: u64,
    /// Its `maxmemory` (0: none).
    pub maxmemory: u64,
    /// Its `total_system_memory`.
    pub total_system_memory: u64,
    /// Entries in the target.
    pub length: u64,
    /// The target's consumer groups.
    pub groups: u64,
    /// The most entries a group of the target has not been delivered (its length when it has
    /// no group, or when Redis cannot count a group's lag).
    pub backlog: u64,
}

impl Hot {
    /// Reads the [`Pressure`] of a replay into `target`.
    ///
    /// # Errors
    /// [`Error::Redis`] when Redis fails, [`Error::Protocol`] for a reply of the wrong shape.
    pub async fn pressure(&self, target: &str) -> Result<Pressure> {
        let reply = self.script("pressure", &raw::PRESSURE, &[target], &[]).await?;
        let numbers: Option<Vec<u64>> = match &reply {
            Item::Array(items) => items
                .iter()
                .map(|i| match i {
                    Item::Int(n) => u64::try_from(*n).ok(),
                    _ => None,
                })
                .collect(),
            _ => None,
        };
        match numbers.as_deref() {
            Some(&[used_memory, maxmemory, total_system_memory, length, groups, backlog]) => Ok(Pressure {
                used_memory,
                maxmemory,
                total_system_memory,
                length,
                groups,
                backlog,
            }),
            _ => Err(Error::Protocol {
                key: target.to_owned(),
                reason: format!("pressure reply is not six counts: {reply:?}"),
            }),
        }
    }
}
