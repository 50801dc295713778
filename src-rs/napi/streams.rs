//! Pull-based readers and writers behind the TypeScript layer's Node streams.

use super::database::{JsStats, NativeDatabase};
use super::error::IntoJs;
use super::options::{config, JsOptions};
use crate::connection::{Command, Connection};
use crate::runtime;
use crate::store::Stats;
use crate::streams::deserialize::{DeserializeOptions, Deserializer};
use crate::streams::serialize::Serializer;
use napi::bindgen_prelude::Buffer;
use std::sync::Arc;
use tokio::sync::Mutex;

#[napi]
pub struct NativeSerializer {
    conn: Arc<Connection>,
    inner: Arc<Mutex<Option<Serializer>>>,
}

#[napi]
impl NativeSerializer {
    #[napi(constructor)]
    pub fn new(db: &NativeDatabase) -> Self {
        NativeSerializer {
            conn: db.conn.clone(),
            inner: Arc::new(Mutex::new(None)),
        }
    }

    /// The next chunk, or null at the end. The first call waits for the database's earlier
    /// commands (so their writes are in the export); the rest never touch the connection thread.
    #[napi]
    pub async fn read(&self) -> napi::Result<Option<Buffer>> {
        let inner = self.inner.clone();
        let mut guard = inner.lock().await;
        if guard.is_none() {
            let handle = self.conn.call(Command::Store).await.js()?;
            *guard = Some(Serializer::new(handle));
        }
        let mut serializer = guard.take().expect("set above");
        let (serializer, chunk) = runtime::run(async move {
            let chunk = serializer.next().await;
            (serializer, chunk)
        })
        .await
        .js()?;
        *guard = Some(serializer);
        Ok(chunk.js()?.map(|b| Buffer::from(b.to_vec())))
    }
}

#[napi]
pub struct NativeDeserializer {
    config: crate::connection::DatabaseConfig,
    overwrite: bool,
    stats: Arc<Stats>,
    inner: Arc<Mutex<Option<Deserializer>>>,
}

/// Starts the import on first use (checks the prefix, connects).
async fn started(
    config: crate::connection::DatabaseConfig,
    overwrite: bool,
    stats: Arc<Stats>,
    slot: &mut Option<Deserializer>,
) -> crate::error::Result<&mut Deserializer> {
    if slot.is_none() {
        config.validate()?;
        let store = config.connect_store(stats).await?;
        let d = Deserializer::start(
            store,
            DeserializeOptions {
                prefix: config.prefix.clone(),
                block_size: config.block_size,
                concurrency: config.concurrency,
                overwrite,
                layout: config.layout,
                compression: config.versioned.compression.unwrap_or_default(),
                keys: config.versioned.encryption.clone(),
            },
        )
        .await?;
        *slot = Some(d);
    }
    Ok(slot.as_mut().expect("set above"))
}

macro_rules! on_importer {
    ($self:ident, |$d:ident| $body:expr) => {{
        let inner = $self.inner.clone();
        let config = $self.config.clone();
        let overwrite = $self.overwrite;
        let stats = $self.stats.clone();
        runtime::run(async move {
            let mut slot = inner.lock_owned().await;
            let $d = started(config, overwrite, stats, &mut slot).await?;
            $body
        })
        .await
        .js()?
        .js()
    }};
}

#[napi]
impl NativeDeserializer {
    #[napi(constructor)]
    pub fn new(
        bucket: String,
        prefix: String,
        options: Option<JsOptions>,
        overwrite: bool,
    ) -> napi::Result<Self> {
        Ok(NativeDeserializer {
            config: config(bucket, prefix, options).js()?,
            overwrite,
            stats: Arc::new(Stats::default()),
            inner: Arc::new(Mutex::new(None)),
        })
    }

    #[napi]
    pub async fn write(&self, chunk: Buffer) -> napi::Result<()> {
        let data = chunk.to_vec();
        on_importer!(self, |d| d.write(&data).await)
    }

    /// Validates the end of the input and publishes the database; returns its size in bytes.
    #[napi]
    pub async fn finish(&self) -> napi::Result<f64> {
        on_importer!(self, |d| d.finish().await.map(|n| n as f64))
    }

    /// Stops the import and deletes what it uploaded.
    #[napi]
    pub async fn abort(&self) -> napi::Result<()> {
        on_importer!(self, |d| {
            d.abort().await;
            Ok(())
        })
    }

    #[napi]
    pub fn stats(&self) -> JsStats {
        self.stats.snapshot().into()
    }
}
