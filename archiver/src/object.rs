//! One object being built: entries are encoded batch by batch on the blocking pool, so that
//! memory holds one batch and the open row group, never the whole object as entries.

use std::sync::Arc;

use bytes::Bytes;
use streamtier_schemas::{EncodeOptions, Entry, ObjectMeta, ObjectWriter, TypedColumn};

use crate::partition::Partition;
use crate::{Error, Result};

/// An object under construction.
pub struct ObjectBuilder {
    writer: Option<ObjectWriter<Vec<u8>>>,
    partition: String,
    key: String,
}

impl ObjectBuilder {
    /// Starts an object that will be stored under `key`.
    ///
    /// # Errors
    /// [`Error::Format`] when the writer cannot be created.
    pub fn new(
        p: &Partition,
        key: String,
        columns: &Arc<Vec<TypedColumn>>,
        options: &EncodeOptions,
    ) -> Result<Self> {
        let writer = ObjectWriter::new(Vec::new(), columns, options).map_err(|source| Error::Format {
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

    /// The key the object will be stored under.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Encodes `entries` (ascending ids, after every entry already written).
    ///
    /// # Errors
    /// [`Error::Format`] on an encoding failure, [`Error::Task`] if the blocking task died.
    pub async fn write(&mut self, entries: Vec<Entry>) -> Result<()> {
        let mut writer = self.take_writer()?;
        let (writer, result) = tokio::task::spawn_blocking(move || {
            let r = writer.write(&entries);
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

    /// Closes the object with its footer metadata and returns its bytes.
    ///
    /// # Errors
    /// [`Error::Format`] on an encoding failure, [`Error::Task`] if the blocking task died.
    pub async fn finish(mut self, meta: ObjectMeta) -> Result<Bytes> {
        let writer = self.take_writer()?;
        let result = tokio::task::spawn_blocking(move || writer.finish(&meta))
            .await
            .map_err(|e| Error::Task {
                partition: self.partition.clone(),
                reason: e.to_string(),
            })?;
        result.map(Bytes::from).map_err(|source| Error::Format {
            partition: self.partition.clone(),
            key: self.key.clone(),
            source,
        })
    }

    fn take_writer(&mut self) -> Result<ObjectWriter<Vec<u8>>> {
        // `write` puts the writer back before returning, so it is only missing after a panic
        // inside the blocking task, which is reported as a task error there.
        self.writer.take().ok_or_else(|| Error::Task {
            partition: self.partition.clone(),
            reason: "object writer lost after a failed encode".into(),
        })
    }
}
