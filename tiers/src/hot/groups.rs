//! A stream's consumer groups: read for a snapshot in one script, so that the groups, their
//! pending entries and the stream's counters are from one instant; put back by a restore in one
//! script, once per job.

use streamtier_schemas::groups::{ConsumerState, GroupState, Name, PendingEntry, StreamCounters};
use streamtier_schemas::StreamId;

use super::raw::{self, Item};
use super::{replay_cursor_key, Hot};
use crate::{Error, Result};

/// A stream's groups and counters at one instant, on Redis' clock.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupsNow {
    /// When they were read (Redis `TIME`, epoch milliseconds).
    pub time_ms: u64,
    /// The stream's counters.
    pub stream: StreamCounters,
    /// Its groups.
    pub groups: Vec<GroupState>,
}

/// The counters a restore gives the stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RestoreCounters {
    /// Its last generated id.
    pub last_generated_id: StreamId,
    /// Entries ever added (raised to the stream's length if lower).
    pub entries_added: u64,
    /// The highest id removed by `XDEL`.
    pub max_deleted_id: StreamId,
}

/// What [`Hot::restore_groups`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RestoredGroups {
    /// Whether an earlier call of the same job had done it all.
    pub already_done: bool,
    /// Groups created.
    pub groups: u64,
    /// Pending entries put back.
    pub pending: u64,
    /// Pending entries whose entry is not in the stream (Redis leaves them out).
    pub missing: u64,
}

impl Hot {
    /// Creates `groups` in `target` with their consumers and pending entries, and sets its
    /// counters, in one atomic script that runs once per `job` and target.
    ///
    /// # Errors
    /// [`Error::Redis`] when Redis refuses (e.g. a group that exists already),
    /// [`Error::Protocol`] for a reply of the wrong shape.
    pub async fn restore_groups(
        &self,
        target: &str,
        job: &str,
        groups: &[GroupState],
        counters: RestoreCounters,
    ) -> Result<RestoredGroups> {
        let mut args: Vec<Vec<u8>> = vec![
            job.as_bytes().to_vec(),
            counters.last_generated_id.to_string().into_bytes(),
            counters.entries_added.to_string().into_bytes(),
            counters.max_deleted_id.to_string().into_bytes(),
            groups.len().to_string().into_bytes(),
        ];
        for g in groups {
            args.push(g.name.as_bytes().to_vec());
            args.push(g.last_delivered_id.to_string().into_bytes());
            args.push(
                g.entries_read
                    .map(|n| n.to_string())
                    .unwrap_or_default()
                    .into_bytes(),
            );
            args.push(g.consumers.len().to_string().into_bytes());
            args.extend(g.consumers.iter().map(|c| c.name.as_bytes().to_vec()));
            args.push(g.pending.len().to_string().into_bytes());
            for p in &g.pending {
                args.push(p.id.to_string().into_bytes());
                args.push(p.consumer.as_bytes().to_vec());
                args.push(p.idle_ms.to_string().into_bytes());
                args.push(p.deliveries.to_string().into_bytes());
            }
        }
        let args: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
        let cursor = replay_cursor_key(target);
        let reply = self
            .script("restore groups", &raw::RESTORE_GROUPS, &[target, &cursor], &args)
            .await?;
        let Item::Array(items) = reply else {
            return Err(protocol(target, "restore reply is not an array"));
        };
        let mut f = Fields {
            stream: target,
            items: items.into_iter(),
            what: "restore",
        };
        if f.int()? == 0 {
            return Ok(RestoredGroups {
                already_done: true,
                ..RestoredGroups::default()
            });
        }
        Ok(RestoredGroups {
            already_done: false,
            groups: f.int()?,
            pending: f.int()?,
            missing: f.int()?,
        })
    }

    /// Reads every consumer group of `stream` with its consumers and at most `max_pending` of
    /// its oldest pending entries, and the stream's counters, atomically. `None` when the
    /// stream does not exist.
    ///
    /// # Errors
    /// [`Error::Redis`] when Redis fails (or the key is not a stream), [`Error::Protocol`] for
    /// a reply of the wrong shape.
    pub async fn groups_now(&self, stream: &str, max_pending: usize) -> Result<Option<GroupsNow>> {
        let limit = max_pending.to_string();
        let reply = self
            .script("groups", &raw::GROUPS, &[stream], &[limit.as_bytes()])
            .await?;
        parse_groups(stream, reply)
    }
}

fn protocol(stream: &str, reason: impl Into<String>) -> Error {
    Error::Protocol {
        key: stream.to_owned(),
        reason: reason.into(),
    }
}

struct Fields<'a> {
    stream: &'a str,
    items: std::vec::IntoIter<Item>,
    what: &'static str,
}

impl<'a> Fields<'a> {
    fn next(&mut self) -> Result<Item> {
        let (stream, what) = (self.stream, self.what);
        self.items
            .next()
            .ok_or_else(|| protocol(stream, format!("{what} reply is too short")))
    }

    fn unexpected(&self, expected: &str, got: &Item) -> Error {
        protocol(
            self.stream,
            format!("{} reply: expected {expected}, got {got:?}", self.what),
        )
    }

    fn int(&mut self) -> Result<u64> {
        self.opt_int()?
            .ok_or_else(|| self.unexpected("a count", &Item::Nil))
    }

    fn opt_int(&mut self) -> Result<Option<u64>> {
        match self.next()? {
            Item::Nil => Ok(None),
            Item::Int(n) if n >= 0 => Ok(Some(n as u64)),
            other => Err(self.unexpected("a count", &other)),
        }
    }

    fn bytes(&mut self) -> Result<Vec<u8>> {
        match self.next()? {
            Item::Bulk(b) => Ok(b.to_vec()),
            other => Err(self.unexpected("a name", &other)),
        }
    }

    fn opt_id(&mut self) -> Result<Option<StreamId>> {
        match self.next()? {
            Item::Nil => Ok(None),
            Item::Bulk(b) => match std::str::from_utf8(&b).ok().and_then(|s| s.parse().ok()) {
                Some(id) => Ok(Some(id)),
                None => Err(self.unexpected("an id", &Item::Bulk(b))),
            },
            other => Err(self.unexpected("an id", &other)),
        }
    }

    fn id(&mut self) -> Result<StreamId> {
        self.opt_id()?.ok_or_else(|| self.unexpected("an id", &Item::Nil))
    }

    fn array(&mut self, what: &'static str) -> Result<Fields<'a>> {
        match self.next()? {
            Item::Array(items) => Ok(Fields {
                stream: self.stream,
                items: items.into_iter(),
                what,
            }),
            // An empty Lua table becomes an empty array or, from `{}`, nil.
            Item::Nil => Ok(Fields {
                stream: self.stream,
                items: Vec::new().into_iter(),
                what,
            }),
            other => Err(self.unexpected("an array", &other)),
        }
    }

    fn is_empty(&self) -> bool {
        self.items.len() == 0
    }
}

fn parse_groups(stream: &str, reply: Item) -> Result<Option<GroupsNow>> {
    let Item::Array(items) = reply else {
        return Err(protocol(stream, "groups reply is not an array"));
    };
    let mut f = Fields {
        stream,
        items: items.into_iter(),
        what: "groups",
    };
    if f.int()? == 0 {
        return Ok(None);
    }
    let time_ms = f.int()?;
    let counters = StreamCounters {
        length: f.int()?,
        entries_added: f.int()?,
        first_entry_id: f.opt_id()?,
        last_generated_id: f.id()?,
        max_deleted_entry_id: f.id()?,
        recorded_first_entry_id: f.id()?,
        last_entry_id: f.opt_id()?,
    };
    let mut list = f.array("groups")?;
    let mut groups = Vec::new();
    while !list.is_empty() {
        let mut g = list.array("group")?;
        let name = Name(g.bytes()?);
        let last_delivered_id = g.id()?;
        let entries_read = g.opt_int()?;
        let pending_count = g.int()?;
        let mut consumers = Vec::new();
        let mut c = g.array("consumers")?;
        while !c.is_empty() {
            consumers.push(ConsumerState {
                name: Name(c.bytes()?),
                pending: c.int()?,
                idle_ms: c.int()?,
            });
        }
        let mut pending = Vec::new();
        let mut p = g.array("pending")?;
        while !p.is_empty() {
            let mut e = p.array("pending entry")?;
            pending.push(PendingEntry {
                id: e.id()?,
                consumer: Name(e.bytes()?),
                idle_ms: e.int()?,
                deliveries: e.int()?,
            });
        }
        groups.push(GroupState {
            name,
            last_delivered_id,
            entries_read,
            consumers,
            pending_truncated: pending_count > pending.len() as u64,
            pending_count,
            pending,
        });
    }
    Ok(Some(GroupsNow {
        time_ms,
        stream: counters,
        groups,
    }))
}
