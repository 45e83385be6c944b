//! `/v1/topics`: each partition's hot window in Redis, its archive, its lag, the consumer groups
//! that hold trimming back, and recorded gaps.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Serialize;
use streamtier_schemas::StreamId;
use streamtier_tiers::archive::PartitionArchive;
use streamtier_tiers::store::Store;

use crate::state::{AppState, ArchiveSummary};
use crate::ApiError;

/// Gap records shown per partition, oldest first.
const MAX_GAPS: usize = 100;

/// A topic in the list.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TopicItem {
    /// Topic name.
    pub topic: String,
    /// Number of partitions.
    pub partitions: usize,
}

/// `GET /v1/topics` answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TopicList {
    /// Topics, by name.
    pub topics: Vec<TopicItem>,
}

/// The Redis side of a partition.
#[derive(Debug, Default, Serialize, utoipa::ToSchema)]
pub struct RedisView {
    /// Entries in the stream (0 when it does not exist).
    pub length: u64,
    /// Oldest entry.
    pub first_id: Option<String>,
    /// Newest entry.
    pub last_id: Option<String>,
}

/// The archive side of a partition.
#[derive(Debug, Default, Serialize, utoipa::ToSchema)]
pub struct ArchiveView {
    /// Objects.
    pub objects: u64,
    /// Entries in them.
    pub entries: u64,
    /// Their bytes.
    pub bytes: u64,
    /// First archived id.
    pub first_id: Option<String>,
    /// Last archived id.
    pub last_id: Option<String>,
}

/// A consumer group that holds trimming back.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct GroupView {
    /// Group name.
    pub name: String,
    /// Last id delivered.
    pub last_delivered_id: String,
    /// Pending entries.
    pub pending: u64,
    /// Lowest pending id.
    pub lowest_pending_id: Option<String>,
    /// Entries not yet delivered, if Redis knows.
    pub lag: Option<u64>,
}

/// A recorded gap.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct GapView {
    /// Last archived id before the gap.
    pub after_id: String,
    /// First id after the gap.
    pub before_id: Option<String>,
    /// Entries lost.
    pub count: u64,
    /// Why.
    pub reason: String,
}

/// One partition.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PartitionView {
    /// Partition number.
    pub partition: u32,
    /// Stream key.
    pub stream: String,
    /// Redis.
    pub redis: RedisView,
    /// Archive.
    pub archive: ArchiveView,
    /// Entries in Redis not archived yet.
    pub unarchived_entries: u64,
    /// Consumer groups that hold trimming back.
    pub groups: Vec<GroupView>,
    /// Recorded gaps.
    pub gaps: Vec<GapView>,
}

/// `GET /v1/topics/{topic}` answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TopicView {
    /// Topic name.
    pub topic: String,
    /// Partitions.
    pub partitions: Vec<PartitionView>,
}

/// `GET /v1/topics`
#[utoipa::path(tag = "topics", get, path = "/v1/topics", responses((status = 401, description = "Missing or wrong bearer token", body = crate::problem::Problem, content_type = "application/problem+json"), (status = 200, description = "Topics", body = TopicList)),
    security(("bearer" = [])))]
pub async fn list(State(state): State<Arc<AppState>>) -> Result<Json<TopicList>, ApiError> {
    let topics = state.topics().await?;
    Ok(Json(TopicList {
        topics: topics
            .into_iter()
            .map(|(topic, parts)| TopicItem {
                topic,
                partitions: parts.len(),
            })
            .collect(),
    }))
}

/// Brings a partition's archive summary up to date by reading only objects added since.
async fn summarize(
    store: &Store,
    topic: &str,
    partition: u32,
    mut s: ArchiveSummary,
) -> Result<ArchiveSummary, ApiError> {
    let archive = PartitionArchive::new(store.clone(), topic, partition);
    // After an object key, only newer objects follow.
    let mut pages = archive.pages(s.last_key.clone());
    while let Some(page) = pages.next_page().await? {
        for object in page {
            let meta = archive.meta(&object).await?;
            s.objects += 1;
            s.entries += meta.entry_count;
            s.bytes += object.size;
            s.first_id.get_or_insert(meta.first_id);
            s.last_id = Some(meta.last_id);
            s.last_offset = meta.last_offset;
            s.last_key = Some(object.key);
        }
    }
    Ok(s)
}

/// `GET /v1/topics/{topic}`
#[utoipa::path(tag = "topics", get, path = "/v1/topics/{topic}", params(("topic" = String, Path, description = "Topic name")),
    responses((status = 401, description = "Missing or wrong bearer token", body = crate::problem::Problem, content_type = "application/problem+json"), (status = 200, description = "The topic's partitions", body = TopicView),
              (status = 404, description = "No such topic", body = crate::problem::Problem, content_type = "application/problem+json")),
    security(("bearer" = [])))]
pub async fn get(
    State(state): State<Arc<AppState>>,
    Path(topic): Path<String>,
) -> Result<Json<TopicView>, ApiError> {
    let parts = &state
        .topic(&topic)
        .await?
        .ok_or_else(|| ApiError::status(StatusCode::NOT_FOUND, format!("topic `{topic}` not found")))?;
    let hot = state.replayer.hot();
    let store = state.replayer.store();
    let mut partitions = Vec::with_capacity(parts.len());
    for p in parts {
        let cached = state
            .summaries
            .lock()
            .ok()
            .and_then(|m| m.get(&(topic.clone(), p.partition)).cloned())
            .unwrap_or_default();
        let summary = summarize(store, &topic, p.partition, cached).await?;
        if let Ok(mut m) = state.summaries.lock() {
            m.insert((topic.clone(), p.partition), summary.clone());
        }
        let info = hot.stream_info(&p.stream).await?;
        let redis = info.as_ref().map_or_else(RedisView::default, |i| RedisView {
            length: i.length,
            first_id: i.first_id.map(|id| id.to_string()),
            last_id: i.last_entry_id.map(|id| id.to_string()),
        });
        let unarchived_entries = match (&info, summary.last_offset, summary.last_id) {
            (None, _, _) => 0,
            (Some(i), Some(offset), _) => i.entries_added.saturating_sub(offset).min(i.length),
            (Some(i), None, None) => i.length,
            (Some(i), None, Some(last)) => {
                // Offsets unknown (an XDEL hid them): count what Redis holds after the archive.
                let batch = hot.read_after(&p.stream, last, None, 100_000).await?;
                (batch.entries.len() as u64).min(i.length)
            }
        };
        let archived = summary.last_id.unwrap_or(StreamId::MIN);
        // A group holds trimming back when it has not been delivered everything archived, or
        // still has entries pending.
        let groups = hot
            .consumer_groups(&p.stream)
            .await?
            .into_iter()
            .filter(|g| g.last_delivered_id < archived || g.pending > 0)
            .map(|g| GroupView {
                name: g.name,
                last_delivered_id: g.last_delivered_id.to_string(),
                pending: g.pending,
                lowest_pending_id: g.lowest_pending_id.map(|id| id.to_string()),
                lag: g.lag,
            })
            .collect();
        let gaps = read_gaps(store, &topic, p.partition).await?;
        partitions.push(PartitionView {
            partition: p.partition,
            stream: p.stream.clone(),
            redis,
            archive: ArchiveView {
                objects: summary.objects,
                entries: summary.entries,
                bytes: summary.bytes,
                first_id: summary.first_id.map(|id| id.to_string()),
                last_id: summary.last_id.map(|id| id.to_string()),
            },
            unarchived_entries,
            groups,
            gaps,
        });
    }
    Ok(Json(TopicView { topic, partitions }))
}

async fn read_gaps(store: &Store, topic: &str, partition: u32) -> Result<Vec<GapView>, ApiError> {
    let records = PartitionArchive::new(store.clone(), topic, partition)
        .gaps(MAX_GAPS)
        .await?;
    Ok(records
        .into_iter()
        .map(|record| GapView {
            after_id: record.after_id.to_string(),
            before_id: record.before_id.map(|id| id.to_string()),
            count: record.count,
            reason: record.reason,
        })
        .collect())
}
