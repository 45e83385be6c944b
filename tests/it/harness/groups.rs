//! Consumer groups in tests: creating them, delivering and acknowledging entries, and reading a
//! stream's whole group state back to compare a source with its restore.

use std::collections::BTreeMap;

use redis::Value;

/// `XGROUP CREATE key name id` (the stream must exist).
pub fn create_group(con: &mut redis::Connection, key: &str, name: &[u8], id: &str) {
    let _: () = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(key)
        .arg(name)
        .arg(id)
        .query(con)
        .expect("XGROUP CREATE");
}

/// `XREADGROUP GROUP group consumer COUNT n STREAMS key >`: the ids delivered.
pub fn deliver(
    con: &mut redis::Connection,
    key: &str,
    group: &[u8],
    consumer: &str,
    n: usize,
) -> Vec<String> {
    let reply: Value = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg(group)
        .arg(consumer)
        .arg("COUNT")
        .arg(n)
        .arg("STREAMS")
        .arg(key)
        .arg(">")
        .query(con)
        .expect("XREADGROUP");
    // [[key, [[id, [field, value, …]], …]]]
    let entries = match &reply {
        Value::Array(streams) => match streams.first() {
            Some(Value::Array(stream)) => stream.get(1).cloned(),
            _ => None,
        },
        _ => None,
    };
    let Some(Value::Array(entries)) = entries else {
        return Vec::new();
    };
    entries
        .iter()
        .filter_map(|e| match e {
            Value::Array(parts) => match parts.first() {
                Some(Value::BulkString(id)) => Some(String::from_utf8_lossy(id).into_owned()),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

/// `XACK key group ids…`, checking that each was pending.
pub fn ack(con: &mut redis::Connection, key: &str, group: &[u8], ids: &[String]) {
    let n: u64 = redis::cmd("XACK")
        .arg(key)
        .arg(group)
        .arg(ids)
        .query(con)
        .expect("XACK");
    assert_eq!(n as usize, ids.len());
}

fn text(v: &Value) -> String {
    match v {
        Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        Value::SimpleString(s) => s.clone(),
        Value::Int(n) => n.to_string(),
        Value::Nil => "nil".into(),
        other => format!("{other:?}"),
    }
}

/// A flat `[name, value, …]` reply as a map of texts (nested values debug-printed).
fn pairs(v: &Value) -> BTreeMap<String, String> {
    let Value::Array(items) = v else {
        panic!("not a flat map: {v:?}");
    };
    items
        .chunks(2)
        .map(|kv| (text(&kv[0]), kv.get(1).map(text).unwrap_or_default()))
        .collect()
}

/// What a stream's groups look like: `XINFO STREAM` counters, and for each group its
/// `XINFO GROUPS` line, its consumers with their pending counts, and `XPENDING` (id,
/// consumer, deliveries), leaving out what time changes (idle times).
#[derive(Debug, PartialEq, Eq)]
pub struct GroupsView {
    /// `length`, `entries-added`, `last-generated-id`, `max-deleted-entry-id`.
    pub counters: BTreeMap<String, String>,
    /// Per group name: its `XINFO GROUPS` fields.
    pub groups: BTreeMap<String, BTreeMap<String, String>>,
    /// Per group name: `(consumer, pending)`.
    pub consumers: BTreeMap<String, Vec<(String, String)>>,
    /// Per group name: `(id, consumer, deliveries)`.
    pub pending: BTreeMap<String, Vec<(String, String, String)>>,
}

/// Reads the [`GroupsView`] of `key`.
pub fn groups_view(con: &mut redis::Connection, key: &str) -> GroupsView {
    let info: Value = redis::cmd("XINFO")
        .arg("STREAM")
        .arg(key)
        .query(con)
        .expect("XINFO STREAM");
    let info = pairs(&info);
    let counters = [
        "length",
        "entries-added",
        "last-generated-id",
        "max-deleted-entry-id",
    ]
    .into_iter()
    .map(|k| (k.to_string(), info.get(k).cloned().unwrap_or_default()))
    .collect();
    let list: Vec<Value> = redis::cmd("XINFO")
        .arg("GROUPS")
        .arg(key)
        .query(con)
        .expect("XINFO GROUPS");
    let mut view = GroupsView {
        counters,
        groups: BTreeMap::new(),
        consumers: BTreeMap::new(),
        pending: BTreeMap::new(),
    };
    for g in &list {
        let fields = pairs(g);
        let name = fields["name"].clone();
        let consumers: Vec<Value> = redis::cmd("XINFO")
            .arg("CONSUMERS")
            .arg(key)
            .arg(name.as_bytes())
            .query(con)
            .expect("XINFO CONSUMERS");
        let consumers = consumers
            .iter()
            .map(|c| {
                let c = pairs(c);
                (c["name"].clone(), c["pending"].clone())
            })
            .collect();
        let pending: Vec<Value> = redis::cmd("XPENDING")
            .arg(key)
            .arg(name.as_bytes())
            .arg("-")
            .arg("+")
            .arg(1_000_000)
            .query(con)
            .expect("XPENDING");
        let pending = pending
            .iter()
            .map(|p| match p {
                Value::Array(f) => (text(&f[0]), text(&f[1]), text(&f[3])),
                other => panic!("XPENDING line {other:?}"),
            })
            .collect();
        view.consumers.insert(name.clone(), consumers);
        view.pending.insert(name.clone(), pending);
        view.groups.insert(name, fields);
    }
    view
}
