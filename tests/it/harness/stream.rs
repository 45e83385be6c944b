//! Helpers to produce entries and read streams and archives back, for assertions.

use std::collections::BTreeSet;

use bytes::Bytes;
use redis::Value;
use streamtier_schemas::{decode_object, layout, Entry, StreamId};
use streamtier_tiers::store::Store;

use crate::harness::redis::RedisServer;

/// `XADD key id f v [f v …]` with binary-safe fields; returns the id Redis assigned.
pub fn xadd(
    con: &mut impl redis::ConnectionLike,
    key: &str,
    id: &str,
    fields: &[(&[u8], &[u8])],
) -> StreamId {
    let mut cmd = redis::cmd("XADD");
    cmd.arg(key).arg(id);
    for (n, v) in fields {
        cmd.arg(*n).arg(*v);
    }
    let id: String = cmd.query(con).expect("XADD");
    id.parse().expect("id")
}

/// `XADD`s an entry with the given id and two fields of one name (`name` = a binary `value`,
/// `name` = `again`: a repeated name and non-UTF-8 bytes), and returns it as it should come
/// back.
pub fn add_twice_named(
    con: &mut impl redis::ConnectionLike,
    key: &str,
    id: StreamId,
    name: &'static [u8],
    value: &[u8],
) -> Entry {
    xadd(con, key, &id.to_string(), &[(name, value), (name, b"again")]);
    Entry {
        id,
        fields: vec![
            (Bytes::from_static(name), Bytes::copy_from_slice(value)),
            (Bytes::from_static(name), Bytes::from_static(b"again")),
        ],
    }
}

/// Every entry of a stream, with fields in order and repeats kept.
pub fn xrange_all(con: &mut impl redis::ConnectionLike, key: &str) -> Vec<Entry> {
    let v: Value = redis::cmd("XRANGE")
        .arg(key)
        .arg("-")
        .arg("+")
        .query(con)
        .expect("XRANGE");
    let Value::Array(items) = v else {
        panic!("XRANGE reply")
    };
    items
        .into_iter()
        .map(|item| {
            let Value::Array(mut pair) = item else {
                panic!("item")
            };
            let Value::Array(flat) = pair.pop().expect("fields") else {
                panic!("fields")
            };
            let Value::BulkString(id) = &pair[0] else {
                panic!("id")
            };
            let id: StreamId = String::from_utf8(id.clone()).expect("id").parse().expect("id");
            let mut fields = Vec::new();
            let mut it = flat.into_iter();
            while let (Some(Value::BulkString(n)), Some(Value::BulkString(v))) = (it.next(), it.next()) {
                fields.push((Bytes::from(n), Bytes::from(v)));
            }
            Entry { id, fields }
        })
        .collect()
}

/// Every object key of a partition, in chain order.
pub async fn object_keys(store: &Store, topic: &str, partition: u32) -> Vec<String> {
    let prefix = layout::partition_prefix(topic, partition);
    store
        .list(&prefix, None, None)
        .await
        .expect("list")
        .into_iter()
        .map(|o| o.key)
        .filter(|k| layout::parse_object_key(k).is_some())
        .collect()
}

/// Every archived entry of a partition, object by object, asserting that the chain is ordered
/// and free of overlaps (each object starts after the previous one ended).
pub async fn archived_entries(store: &Store, topic: &str, partition: u32) -> Vec<Entry> {
    let mut out: Vec<Entry> = Vec::new();
    for key in object_keys(store, topic, partition).await {
        let body = store.get(&key).await.expect("get object");
        let (meta, entries) = decode_object(body).expect("decode object");
        if let Some(prev) = out.last() {
            assert!(
                meta.first_id > prev.id,
                "object `{key}` overlaps the previous one (starts {} <= {})",
                meta.first_id,
                prev.id
            );
        }
        assert_eq!(
            entries.first().map(|e| e.id),
            Some(meta.first_id),
            "first id of `{key}`"
        );
        assert_eq!(
            entries.last().map(|e| e.id),
            Some(meta.last_id),
            "last id of `{key}`"
        );
        out.extend(entries);
    }
    out
}

/// Gap records of a partition.
pub async fn gap_records(store: &Store, topic: &str, partition: u32) -> Vec<streamtier_schemas::GapRecord> {
    let prefix = format!("{}_gaps/", layout::partition_prefix(topic, partition));
    let mut out = Vec::new();
    for o in store.list(&prefix, None, None).await.expect("list gaps") {
        let body = store.get(&o.key).await.expect("get gap");
        out.push(streamtier_schemas::GapRecord::from_json(&body).expect("gap json"));
    }
    out
}

/// Asserts that Redis and the archive together hold every produced id exactly once (entries
/// retained in Redis after archiving may appear in both) and that the archive has no duplicate.
pub async fn assert_exactly_once(
    redis: &RedisServer,
    store: &Store,
    topic: &str,
    p: u32,
    stream: &str,
    produced: &BTreeSet<StreamId>,
) {
    let archived: Vec<StreamId> = archived_entries(store, topic, p)
        .await
        .into_iter()
        .map(|e| e.id)
        .collect();
    let unique: BTreeSet<StreamId> = archived.iter().copied().collect();
    assert_eq!(
        unique.len(),
        archived.len(),
        "{stream}: the archive holds duplicates"
    );
    let in_redis: BTreeSet<StreamId> = xrange_all(&mut redis.con(), stream)
        .into_iter()
        .map(|e| e.id)
        .collect();
    let union: BTreeSet<StreamId> = unique.union(&in_redis).copied().collect();
    let missing: Vec<_> = produced.difference(&union).take(5).collect();
    assert!(
        missing.is_empty(),
        "{stream}: entries lost, e.g. {missing:?}; redis log:\n{}",
        redis.log()
    );
    let extra: Vec<_> = union.difference(produced).take(5).collect();
    assert!(extra.is_empty(), "{stream}: entries nobody produced: {extra:?}");
    let last = archived.last().copied().unwrap_or(StreamId::MIN);
    assert!(
        in_redis.iter().all(|id| *id > last || unique.contains(id)),
        "{stream}: a hole between archive and redis"
    );
}
