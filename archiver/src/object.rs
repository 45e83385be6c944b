//! One object being built: entries are encoded batch by batch on the blocking pool into a
//! spool file of the store, so that memory holds one batch and the open row group, never the
//! whole object, as entries or as bytes.

use std::sync::Arc;

use streamtier_schemas::{EncodeOptions, EntryBatch, ObjectMeta, ObjectWriter, TypedColumn};
use streamtier_tiers::store::{SpoolFile, Store};

use crate::partition::Partition;
use crate::{Error, Result};

/// An object under construction.
pub struct ObjectBuilder {
    writer: Option<ObjectWriter<SpoolFile>>,
    partition: String,
    key: String,
}

impl ObjectBuilder {
    /// Starts an object that will be stored under `key` in `store`, spooled in a file of it.
    ///
    /// # Errors
    /// [`Error::Tier`] when the spool file cannot be created, [`Error::Format`] when the
    /// writer cannot be.
    pub async fn new(
        p: &Partition,
        store: &Store,
        key: String,
        columns: &Arc<Vec<TypedColumn>>,
        options: &EncodeOptions,
    ) -> Result<Self> {
        let spool = store.spool().await.map_err(|source| Error::Tier {
            partition: p.label(),
            source,
        })?;
        let writer = ObjectWriter::new(spool, columns, options).map_err(|source| Error::Format {
            partition: p.label(),
            key: key.clone(),
            source,
        })?;
        Ok(Self {
            writer: Some(writer),
            partition: p.label(),
            key,
        })
    }

    /// Encodes `entries` (ascending ids, after every entry already written).
    ///
    /// # Errors
    /// [`Error::Format`] on an encoding failure, [`Error::Task`] if the blocking task died.
    pub async fn write(&mut self, entries: EntryBatch) -> Result<()> {
        let mut writer = self.take_writer()?;
        let (writer, result) = tokio::task::spawn_blocking(move || {
            let r = writer.write_batch(&entries);
            (writer, r)
        })
        .await
        .map_err(|e| Error::Task {
            partition: self.partition.clone(),
            reason: e.to_string(),
        })?;
        self.writer = Some(writer);
        result.map_err(|source| Error::Format {
            partition: self.partition.clone(),
            key: self.key.clone(),
            source,
        })
    }

    /// Closes the object with its footer metadata and returns its spool file.
    ///
    /// # Errors
    /// [`Error::Format`] on an encoding failure, [`Error::Task`] if the blocking task died.
    pub async fn finish(mut self, meta: ObjectMeta) -> Result<SpoolFile> {
        let writer = self.take_writer()?;
        let result = tokio::task::spawn_blocking(move || writer.finish(&meta))
            .await
            .map_err(|e| Error::Task {
                partition: self.partition.clone(),
                reason: e.to_string(),
            })?;
        result.map_err(|source| Error::Format {
            partition: self.partition.clone(),
            key: self.key.clone(),
            source,
        })
    }

    fn take_writer(&mut self) -> Result<ObjectWriter<SpoolFile>> {
        // `write` puts the writer back before returning, so it is only missing after a panic
        // inside the blocking task, which is reported as a task error there.
        self.writer.take().ok_or_else(|| Error::Task {
            partition: self.partition.clone(),
            reason: "object writer lost after a failed encode".into(),
        })
    }
}
