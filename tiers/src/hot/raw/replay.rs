//! The replay write transaction, without copying every entry through Lua.
//!
//! 1. `WATCH` the job's cursor hash (and, with original ids, the target stream), then a small
//!    script reads the cursor, the target's type and its last generated id.
//! 2. If the cursor is the expected one (and original ids would ascend): `MULTI`, one `XADD`
//!    per entry, a commit script that moves the cursor, `EXEC`.
//!
//! Exactly once: `EXEC` runs nothing if a watched key changed after step 1, so the cursor still
//! holds what step 1 saw when the entries are added, and the entries and the cursor move
//! together. Inside `EXEC`, an `XADD` can only fail if the target is not a stream; then every
//! `XADD` fails and the commit script, which checks the type, leaves the cursor alone. With
//! original ids, step 1 checked that they ascend past the target's last id and the `WATCH`
//! on the target guarantees it still holds. A command refused while queuing (out of memory, a
//! read-only replica) aborts the whole transaction.

use streamtier_schemas::StreamId;

use super::resp::{Cursor, Failure, Item, Request};
use super::script::{is_noscript, By, REPLAY_CHECK, REPLAY_COMMIT};
use super::RawPool;
use crate::hot::replay::{replay_cursor_key, IdMode, ReplayBatch, ReplayWrite};

/// Rounds lost to concurrent changes of the watched keys before giving up (each lost round
/// means another writer committed, so the next check normally sees why).
const MAX_ROUNDS: usize = 16;

impl RawPool {
    /// Writes one replay batch with its cursor; see the module docs. `asking` after an `ASK`
    /// redirect: every command then follows an `ASKING` (inside `MULTI` one is enough).
    pub(crate) async fn write_replay(
        &self,
        asking: bool,
        batch: &ReplayBatch<'_>,
    ) -> Result<ReplayWrite, Failure> {
        let target = batch.target;
        let Some(last) = batch.through.or(batch.entries.last().map(|e| e.id)) else {
            return Err(Failure::Protocol("empty replay batch".into()));
        };
        let first = batch.entries.first();
        let cursor_key = replay_cursor_key(target);
        let expected = batch.expected.map(|c| c.to_string()).unwrap_or_default();
        let original = batch.ids == IdMode::Original;
        let mode: &[u8] = if original { b"original" } else { b"new" };
        let check = |by: By| {
            let mut check = Request::default();
            check.asking(asking);
            if original {
                check.push(&[b"WATCH", cursor_key.as_bytes(), target.as_bytes()]);
            } else {
                check.push(&[b"WATCH", cursor_key.as_bytes()]);
            }
            check.asking(asking).eval(
                &REPLAY_CHECK,
                by,
                &[target.as_bytes(), cursor_key.as_bytes()],
                &[batch.job.as_bytes(), mode],
            );
            check
        };
        let tx = transaction(batch, asking, &cursor_key, last);
        let mut by = By::Hash;
        let mut rounds = 0;
        while rounds < MAX_ROUNDS {
            let (mut con, reply) = self.exchange(&check(by)).await?;
            let state = match parse_check(&reply, asking) {
                Err(f) if by == By::Hash && is_noscript(&f) => {
                    // The script cache was flushed; the body loads it (the dropped connection
                    // takes its WATCH along).
                    by = By::Body;
                    continue;
                }
                other => other?,
            };
            rounds += 1;
            // Returning early drops the connection, and its WATCH with it.
            if state.cursor != expected {
                return Ok(ReplayWrite::CursorMoved {
                    cursor: opt_id(&state.cursor)?,
                    total: state.total,
                });
            }
            if state.kind != "stream" && state.kind != "none" {
                return Err(wrong_type(target, &state.kind));
            }
            if let (true, false, Some(first)) = (original, state.top.is_empty(), first) {
                let top: StreamId = state
                    .top
                    .parse()
                    .map_err(|_| Failure::Protocol(format!("bad last id `{}`", state.top)))?;
                if first.id <= top {
                    return Ok(ReplayWrite::IdConflict { target_last: top });
                }
            }
            // A broken connection here leaves it open whether the batch landed; the caller
            // retries and the cursor tells.
            let reply = con.exchange(&tx).await?;
            // EXEC ends the WATCH, and the reply was read whole: the connection is clean.
            self.give_back(con);
            match parse_exec(&reply, asking, batch.entries.len())? {
                Exec::Aborted => continue,
                Exec::Committed(total) => return Ok(ReplayWrite::Written { total }),
                Exec::WrongType(kind) => return Err(wrong_type(target, &kind)),
            }
        }
        Err(Failure::Server(format!(
            "TRYAGAIN the replay cursor of `{target}` kept changing during {MAX_ROUNDS} attempts"
        )))
    }
}

fn opt_id(s: &str) -> Result<Option<StreamId>, Failure> {
    if s.is_empty() {
        return Ok(None);
    }
    s.parse()
        .map(Some)
        .map_err(|_| Failure::Protocol(format!("bad cursor `{s}`")))
}

/// `MULTI`, the `XADD`s, the commit script, `EXEC`.
fn transaction(batch: &ReplayBatch<'_>, asking: bool, cursor_key: &str, last: StreamId) -> Request {
    let target = batch.target.as_bytes();
    let size: usize = batch.entries.iter().map(|e| e.payload_len() * 2).sum();
    let mut tx = Request {
        buf: Vec::with_capacity(size + 1024),
        commands: 0,
    };
    tx.asking(asking).push(&[b"MULTI"]);
    let mut id = String::new();
    let mut origin_value = Vec::new();
    for entry in batch.entries {
        let extra = if batch.origin.is_some() { 2 } else { 0 };
        id.clear();
        id.push_str(itoa::Buffer::new().format(entry.id.ms));
        id.push('-');
        id.push_str(itoa::Buffer::new().format(entry.id.seq));
        tx.command(3 + 2 * entry.fields.len() + extra)
            .arg(b"XADD")
            .arg(target);
        match batch.ids {
            IdMode::Original => tx.arg(id.as_bytes()),
            IdMode::New => tx.arg(b"*"),
        };
        for (name, value) in &entry.fields {
            tx.arg(name).arg(value);
        }
        if let Some((field, prefix)) = batch.origin {
            origin_value.clear();
            origin_value.extend_from_slice(prefix.as_bytes());
            origin_value.extend_from_slice(id.as_bytes());
            tx.arg(field.as_bytes()).arg(&origin_value);
        }
    }
    let count = batch.entries.len().to_string();
    // By body: a missing script inside EXEC would fail after the XADDs ran.
    tx.eval(
        &REPLAY_COMMIT,
        By::Body,
        &[target, cursor_key.as_bytes()],
        &[
            batch.job.as_bytes(),
            last.to_string().as_bytes(),
            count.as_bytes(),
        ],
    );
    tx.push(&[b"EXEC"]);
    tx
}

struct CheckState {
    cursor: String,
    total: u64,
    kind: String,
    top: String,
}

fn parse_check(reply: &bytes::Bytes, asking: bool) -> std::result::Result<CheckState, Failure> {
    let mut c = Cursor::new(reply);
    for _ in 0..1 + 2 * usize::from(asking) {
        c.simple()?;
    }
    let Item::Array(items) = c.item(0)? else {
        return Err(Failure::Protocol(
            "the replay check did not answer an array".into(),
        ));
    };
    let text = |i: usize| items.get(i).and_then(Item::text).unwrap_or_default();
    Ok(CheckState {
        cursor: text(0),
        total: text(1)
            .parse()
            .map_err(|_| Failure::Protocol(format!("bad replay count `{}`", text(1))))?,
        kind: text(2),
        top: text(3),
    })
}

enum Exec {
    /// A watched key changed: nothing ran.
    Aborted,
    /// The entries were added and the cursor moved; the job's new total.
    Committed(u64),
    /// The target is not a stream: nothing was added, the cursor did not move.
    WrongType(String),
}

fn parse_exec(reply: &bytes::Bytes, asking: bool, entries: usize) -> std::result::Result<Exec, Failure> {
    let mut c = Cursor::new(reply);
    if asking {
        c.simple()?;
    }
    c.simple()?;
    // A command refused while queuing aborts the transaction; report the first refusal.
    let mut refused = None;
    for _ in 0..=entries {
        if let Err(e) = c.simple() {
            refused.get_or_insert(e);
        }
    }
    let n = match (c.array(), refused) {
        (_, Some(e)) | (Err(e), None) => return Err(e),
        (Ok(n), None) => n,
    };
    if n < 0 {
        return Ok(Exec::Aborted);
    }
    if n as usize != entries + 1 {
        return Err(Failure::Protocol(format!(
            "EXEC answered {n} replies for {} commands",
            entries + 1
        )));
    }
    let mut failed = None;
    for _ in 0..entries {
        match c.item(0) {
            Ok(_) => {}
            Err(Failure::Server(m)) => {
                failed.get_or_insert(m);
            }
            Err(e) => return Err(e),
        }
    }
    match c.item(0)? {
        Item::Array(items) => match (items.first(), items.get(1).and_then(Item::text)) {
            (Some(Item::Int(1)), Some(total)) => match failed {
                // Cannot happen (see the module docs); never report such a batch as written.
                Some(m) => Err(Failure::Protocol(format!(
                    "an entry was refused inside a committed replay batch: {m}"
                ))),
                None => total
                    .parse()
                    .map(Exec::Committed)
                    .map_err(|_| Failure::Protocol(format!("bad replay total `{total}`"))),
            },
            (Some(Item::Int(0)), Some(kind)) => Ok(Exec::WrongType(kind)),
            _ => Err(Failure::Protocol("unexpected replay commit reply".into())),
        },
        _ => Err(Failure::Protocol("unexpected replay commit reply".into())),
    }
}

fn wrong_type(target: &str, kind: &str) -> Failure {
    Failure::Server(format!(
        "WRONGTYPE replay target `{target}` is a {kind}, not a stream"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn exec(data: &'static [u8], n: usize) -> std::result::Result<Exec, Failure> {
        parse_exec(&Bytes::from_static(data), false, n)
    }

    #[test]
    fn exec_outcomes() {
        let ok = b"+OK\r\n+QUEUED\r\n+QUEUED\r\n+QUEUED\r\n*3\r\n$3\r\n1-1\r\n$3\r\n1-2\r\n*2\r\n:1\r\n$2\r\n12\r\n";
        assert!(matches!(exec(ok, 2), Ok(Exec::Committed(12))));
        let aborted = b"+OK\r\n+QUEUED\r\n+QUEUED\r\n*-1\r\n";
        assert!(matches!(exec(aborted, 1), Ok(Exec::Aborted)));
        let wrong = b"+OK\r\n+QUEUED\r\n+QUEUED\r\n*2\r\n-WRONGTYPE x\r\n*2\r\n:0\r\n$4\r\nhash\r\n";
        assert!(matches!(exec(wrong, 1), Ok(Exec::WrongType(k)) if k == "hash"));
        let oom = b"+OK\r\n-OOM command not allowed\r\n+QUEUED\r\n-EXECABORT Transaction discarded\r\n";
        assert!(matches!(exec(oom, 1), Err(Failure::Server(m)) if m.starts_with("OOM")));
        let partial = b"+OK\r\n+QUEUED\r\n+QUEUED\r\n*2\r\n-ERR id\r\n*2\r\n:1\r\n$1\r\n1\r\n";
        assert!(matches!(exec(partial, 1), Err(Failure::Protocol(_))));
    }
}
