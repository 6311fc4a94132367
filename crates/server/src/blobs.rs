//! The attachment store (`--attachments-url`): sealed bytes in a local directory or an S3
//! bucket, through `object_store`, and the chunked format they are sealed in.
//!
//! Format of one object: the 4 bytes `CFA1`, then the plain bytes in chunks of 64 KiB (the
//! last one shorter, possibly empty), each sealed on its own as `nonce ‖ ciphertext ‖ tag`
//! (AES-256-GCM under the site's data key). A chunk's AAD is `attachment id ‖ chunk index
//! (u64 BE) ‖ last-chunk flag`: a chunk moved to another attachment or place, a reordering, a
//! truncation (the last chunk read has no flag) or an extension (the flagged chunk is not
//! the last) does not open. Writing holds one chunk and a few upload parts at a time; reading
//! holds one read of the object (256 KiB from a local file) and the chunk being sent.

use std::path::PathBuf;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use confidant_core::AttachmentId;
use confidant_store::{BLOB_CHUNK_OVERHEAD, BlobKey};
use futures_util::StreamExt as _;
use futures_util::stream::BoxStream;
use object_store::path::Path as ObjectPath;
use object_store::{GetResultPayload, ObjectStore, WriteMultipart};

use crate::config::AttachmentsUrl;

/// Plain bytes per sealed chunk.
pub const CHUNK: usize = 64 * 1024;
const MAGIC: &[u8; 4] = b"CFA1";
/// Local files: parts of 256 KiB (a part is what the store writes at once; with two in flight
/// and one filling, an upload holds under 1 MiB of parts).
const LOCAL_PART: usize = 256 * 1024;
/// Local files are read 256 KiB per call on the blocking pool (about four sealed chunks): a
/// download holds about that much at once, and a 10 MB file takes 40 hops.
const LOCAL_READ: usize = 256 * 1024;
/// S3 needs parts of at least 5 MiB (but the last).
const S3_PART: usize = 5 * 1024 * 1024;

/// Where sealed attachment bytes live. Cheap to clone.
#[derive(Clone)]
pub struct Blobs {
    store: Arc<dyn ObjectStore>,
    /// Keys start with this (S3: the URL's prefix and a slash; local: empty).
    prefix: String,
    /// The directory of a local store: files get 0600 and an fsync before an upload answers.
    local_root: Option<PathBuf>,
    part: usize,
    /// For the log: `local:/path` or `s3://bucket/prefix`.
    pub describe: String,
}

fn aad(id: AttachmentId, index: u64, last: bool) -> [u8; 25] {
    let mut a = [0u8; 25];
    a[..16].copy_from_slice(id.0.as_bytes());
    a[16..24].copy_from_slice(&index.to_be_bytes());
    a[24] = u8::from(last);
    a
}

/// The number of chunks an attachment of `size` plain bytes is sealed in.
fn chunks_of(size: u64) -> u64 {
    size.div_ceil(CHUNK as u64).max(1)
}

/// The size of the stored object for `size` plain bytes.
pub fn sealed_size(size: u64) -> u64 {
    MAGIC.len() as u64 + size + chunks_of(size) * BLOB_CHUNK_OVERHEAD as u64
}

impl Blobs {
    pub fn open(url: &AttachmentsUrl) -> anyhow::Result<Blobs> {
        use anyhow::Context as _;
        match url {
            AttachmentsUrl::Local(dir) => {
                confidant_store::private_dir(dir).with_context(|| {
                    format!("cannot create the attachments directory {}", dir.display())
                })?;
                let store = object_store::local::LocalFileSystem::new_with_prefix(dir)
                    .with_context(|| {
                        format!("cannot open the attachments directory {}", dir.display())
                    })?
                    .with_automatic_cleanup(true);
                Ok(Blobs {
                    store: Arc::new(store),
                    prefix: String::new(),
                    local_root: Some(dir.canonicalize().unwrap_or_else(|_| dir.clone())),
                    part: LOCAL_PART,
                    describe: format!("local:{}", dir.display()),
                })
            }
            AttachmentsUrl::S3 { bucket, prefix } => {
                let endpoint = std::env::var("AWS_ENDPOINT_URL")
                    .or_else(|_| std::env::var("AWS_ENDPOINT"))
                    .unwrap_or_default();
                let store = object_store::aws::AmazonS3Builder::from_env()
                    .with_bucket_name(bucket)
                    .with_allow_http(endpoint.starts_with("http://"))
                    .build()
                    .context("cannot set up the S3 attachment store (check AWS_REGION, AWS_ENDPOINT_URL and the credentials)")?;
                Ok(Blobs {
                    store: Arc::new(store),
                    prefix: if prefix.is_empty() {
                        String::new()
                    } else {
                        format!("{prefix}/")
                    },
                    local_root: None,
                    part: S3_PART,
                    describe: format!("s3://{bucket}/{prefix}"),
                })
            }
        }
    }

    /// The key of an attachment's object.
    pub fn key_for(&self, site: confidant_core::SiteId, id: AttachmentId) -> String {
        format!("{}{}/{}", self.prefix, site.0, id)
    }

    /// Start writing the sealed object of attachment `id` at `key`.
    pub async fn writer(
        &self,
        key: &str,
        id: AttachmentId,
        blob_key: BlobKey,
    ) -> object_store::Result<BlobWriter> {
        let location = ObjectPath::from(key);
        let upload = self.store.put_multipart(&location).await?;
        let mut out = WriteMultipart::new_with_chunk_size(upload, self.part);
        out.write(MAGIC);
        Ok(BlobWriter {
            out: Some(out),
            key: blob_key,
            id,
            index: 0,
            pending: BytesMut::with_capacity(CHUNK),
            sealed: Vec::with_capacity(CHUNK + BLOB_CHUNK_OVERHEAD),
            local: self.local_root.as_ref().map(|r| r.join(key)),
        })
    }

    /// The plain bytes of attachment `id` (`size` plain bytes, sealed with `blob_key`), as a
    /// stream that fails at the first chunk that does not open.
    pub async fn read(
        &self,
        key: &str,
        id: AttachmentId,
        size: u64,
        blob_key: BlobKey,
    ) -> Result<BoxStream<'static, std::io::Result<Bytes>>, ReadError> {
        let got = match self.store.get(&ObjectPath::from(key)).await {
            Ok(g) => g,
            Err(object_store::Error::NotFound { .. }) => return Err(ReadError::Missing),
            Err(e) => return Err(ReadError::Store(e)),
        };
        if got.meta.size != sealed_size(size) {
            return Err(ReadError::Damaged(format!(
                "object {key} has {} bytes, not {}",
                got.meta.size,
                sealed_size(size)
            )));
        }
        let total = chunks_of(size);
        let input = match got.payload {
            GetResultPayload::File(file, _) => local_reads(file),
            GetResultPayload::Stream(stream) => stream,
        };
        let mut state = ReadState {
            input,
            buf: BytesMut::new(),
            header: false,
            index: 0,
            total,
            id,
            key: blob_key,
        };
        // The first chunk is opened before the answer starts: a damaged or foreign object is
        // an error answer, not a download cut short (a later chunk can only cut it short).
        let first = state
            .next_chunk()
            .await
            .map_err(|e| ReadError::Damaged(format!("object {key}: {e}")))?;
        let rest = futures_util::stream::unfold(state, |mut s| async move {
            match s.next_chunk().await {
                Ok(Some(b)) => Some((Ok(b), s)),
                Ok(None) => None,
                Err(e) => {
                    s.index = s.total; // stop after the error
                    Some((Err(e), s))
                }
            }
        });
        Ok(futures_util::stream::iter(first.map(Ok))
            .chain(rest)
            .boxed())
    }

    /// Delete an object (one that is gone already counts as deleted).
    pub async fn delete(&self, key: &str) -> object_store::Result<()> {
        match self.store.delete(&ObjectPath::from(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Keys of the objects last written before `before` (Unix ms), at most `limit`.
    pub async fn older_than(&self, before: i64, limit: usize) -> object_store::Result<Vec<String>> {
        let prefix =
            (!self.prefix.is_empty()).then(|| ObjectPath::from(self.prefix.trim_end_matches('/')));
        let mut list = self.store.list(prefix.as_ref());
        let mut out = Vec::new();
        while let Some(meta) = list.next().await {
            let meta = meta?;
            if meta.last_modified.timestamp_millis() < before {
                out.push(meta.location.to_string());
                if out.len() >= limit {
                    break;
                }
            }
        }
        Ok(out)
    }
}

/// Why an object cannot be read.
#[derive(Debug)]
pub enum ReadError {
    Missing,
    /// The store did not answer.
    Store(object_store::Error),
    /// The object is not what was stored (altered, cut short, another attachment's).
    Damaged(String),
}

/// An object being written: feed plain bytes with `write`, then `finish` (or `abort`).
pub struct BlobWriter {
    out: Option<WriteMultipart>,
    key: BlobKey,
    id: AttachmentId,
    index: u64,
    pending: BytesMut,
    sealed: Vec<u8>,
    local: Option<PathBuf>,
}

impl BlobWriter {
    /// Take more plain bytes; full chunks are sealed and handed to the store as they fill.
    pub async fn write(&mut self, mut data: &[u8]) -> object_store::Result<()> {
        while !data.is_empty() {
            // A full chunk is sealed only once more bytes follow: the last chunk must carry
            // the flag, and it is known to be last only at `finish`.
            if self.pending.len() == CHUNK {
                self.seal_pending(false).await?;
            }
            let take = (CHUNK - self.pending.len()).min(data.len());
            self.pending.extend_from_slice(&data[..take]);
            data = &data[take..];
        }
        Ok(())
    }

    async fn seal_pending(&mut self, last: bool) -> object_store::Result<()> {
        self.sealed.clear();
        self.key.seal_into(
            &aad(self.id, self.index, last),
            &self.pending,
            &mut self.sealed,
        );
        self.pending.clear();
        self.index += 1;
        let out = self
            .out
            .as_mut()
            .ok_or(object_store::Error::NotImplemented)?;
        // At most two parts in flight: memory stays a few parts per upload.
        out.wait_for_capacity(2).await?;
        out.write(&self.sealed);
        Ok(())
    }

    /// Seal the last chunk, complete the object and make it durable (local: fsync of the file
    /// and its directory; S3: the completed upload).
    pub async fn finish(mut self) -> object_store::Result<()> {
        self.seal_pending(true).await?;
        let out = self.out.take().ok_or(object_store::Error::NotImplemented)?;
        out.finish().await?;
        if let Some(path) = self.local.take() {
            tokio::task::spawn_blocking(move || sync_private(&path))
                .await
                .map_err(|e| generic(e.to_string()))?
                .map_err(|e| generic(e.to_string()))?;
        }
        Ok(())
    }

    /// Give up: nothing of the object stays.
    pub async fn abort(mut self) {
        if let Some(out) = self.out.take()
            && let Err(e) = out.abort().await
        {
            tracing::warn!(error = %e, "could not abort an attachment upload");
        }
    }
}

/// A local file's bytes, [`LOCAL_READ`] at a time, each read on the blocking pool.
/// (`object_store`'s own stream of a local file reads 8 KiB per hop to the blocking pool: a
/// 10 MB download paid 1,280 hops, and was served at 0.03 of the disk's cached read rate.)
fn local_reads(file: std::fs::File) -> BoxStream<'static, object_store::Result<Bytes>> {
    futures_util::stream::try_unfold(Some(file), |file| async move {
        let Some(mut file) = file else {
            return Ok(None);
        };
        let (file, read) = tokio::task::spawn_blocking(move || {
            use std::io::Read as _;
            let mut read = Vec::with_capacity(LOCAL_READ);
            let got = (&mut file).take(LOCAL_READ as u64).read_to_end(&mut read);
            got.map(|_| (file, read))
        })
        .await
        .map_err(|e| generic(e.to_string()))?
        .map_err(|e| generic(e.to_string()))?;
        if read.is_empty() {
            return Ok(None);
        }
        // A short read is the end of the file: no further hop to find that out.
        let more = (read.len() == LOCAL_READ).then_some(file);
        Ok(Some((Bytes::from(read), more)))
    })
    .boxed()
}

fn generic(message: String) -> object_store::Error {
    object_store::Error::Generic {
        store: "attachments",
        source: message.into(),
    }
}

/// A file the local store wrote: 0600, its bytes and its directory entry on disk.
fn sync_private(path: &std::path::Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    }
    std::fs::File::open(path)?.sync_all()?;
    if let Some(dir) = path.parent() {
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
        }
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

struct ReadState {
    input: BoxStream<'static, object_store::Result<Bytes>>,
    buf: BytesMut,
    header: bool,
    index: u64,
    total: u64,
    id: AttachmentId,
    key: BlobKey,
}

impl ReadState {
    /// Fill `buf` to `n` bytes, or fewer at the end of the object.
    async fn fill(&mut self, n: usize) -> std::io::Result<()> {
        while self.buf.len() < n {
            match self.input.next().await {
                Some(Ok(b)) => self.buf.extend_from_slice(&b),
                Some(Err(e)) => return Err(std::io::Error::other(e)),
                None => break,
            }
        }
        Ok(())
    }

    async fn next_chunk(&mut self) -> std::io::Result<Option<Bytes>> {
        if self.index >= self.total {
            return Ok(None);
        }
        if !self.header {
            self.fill(MAGIC.len()).await?;
            if self.buf.len() < MAGIC.len() || &self.buf[..MAGIC.len()] != MAGIC {
                return Err(std::io::Error::other("not a sealed attachment"));
            }
            let _ = self.buf.split_to(MAGIC.len());
            self.header = true;
        }
        let want = CHUNK + BLOB_CHUNK_OVERHEAD;
        self.fill(want).await?;
        let last = self.index + 1 == self.total;
        let take = if last { self.buf.len() } else { want };
        if self.buf.len() < take || take < BLOB_CHUNK_OVERHEAD || (last && take > want) {
            return Err(std::io::Error::other("a sealed attachment is cut short"));
        }
        let mut sealed = self.buf.split_to(take);
        let plain = self
            .key
            .open_chunk(&aad(self.id, self.index, last), &mut sealed)
            .ok_or_else(|| std::io::Error::other("a chunk of an attachment does not open"))?;
        self.index += 1;
        // The plain bytes are answered from where they were opened, without a copy.
        sealed.truncate(plain.end);
        Ok(Some(sealed.freeze().slice(plain.start..)))
    }
}
