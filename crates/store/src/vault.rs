//! Encryption at rest (CONTRACT §2): every value worth stealing is sealed with AES-256-GCM
//! before it reaches the database, so a copy of the database file or a dump shows none of it.
//!
//! Key hierarchy: a 32-byte **master key** (a file the database never sees, `MasterKey`) wraps
//! one 32-byte **data key** per site (table `data_keys`, one row per site, key version and
//! master key; site 0 is the server's own, for its signing keys). Data keys are unwrapped on
//! first use and kept in memory; values are sealed under their site's data key. Rotating the
//! master key rewraps the data keys only (`rotate_master_key`): no value is sealed again.
//!
//! A sealed value is text, `v1.<site>.<version>.<base64url(nonce ‖ ciphertext ‖ tag)>`, in the
//! value's existing TEXT column. The AAD names the value's place (`messages.body|<message id>`):
//! a ciphertext copied into another row, column or table does not open.
//!
//! The master key's id (`MasterKey::id`, an HMAC of the key) is stored with each wrap, so a
//! server started with the wrong key says so instead of failing on the first read.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, RwLock};

use anyhow::Context as _;
use aws_lc_rs::aead::{AES_256_GCM, Aad, NONCE_LEN, Nonce, RandomizedNonceKey};
use base64::Engine as _;
use confidant_core::SiteId;
use sqlx::{AnyPool, Row as _};

use crate::{MessageRow, StoreError};

/// The site whose data key seals the server's own secrets (the access-token signing keys).
pub const SYSTEM_SITE: SiteId = SiteId(0);
/// The data-key version new values are sealed under. The format carries it so that data keys
/// can be replaced later without reading old values wrong.
const DATA_KEY_VERSION: i64 = 1;
const PREFIX: &str = "v1";
const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    /// The value is not in the sealed format.
    #[error("a stored value is not sealed")]
    NotSealed,
    /// Authentication failed: the wrong key, or a value moved to another place or altered.
    #[error("a stored value does not open ({0})")]
    DoesNotOpen(String),
    /// The site's data key is wrapped only under another master key.
    #[error(
        "the data key of site {site} is not wrapped under this master key (id {ours}); run \
         `confidant rotate-master-key` with the key it is wrapped under"
    )]
    NotWrappedForUs { site: i64, ours: String },
    #[error("no data key for site {0}")]
    NoDataKey(i64),
    #[error("database error reading data keys: {0}")]
    Db(#[from] sqlx::Error),
}

impl From<VaultError> for StoreError {
    fn from(e: VaultError) -> Self {
        match e {
            VaultError::Db(e) => e.into(),
            other => StoreError::Corrupt(other.to_string()),
        }
    }
}

/// The master key: 32 bytes, kept in a file apart from the database.
pub struct MasterKey {
    key: RandomizedNonceKey,
    id: String,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MasterKey({})", self.id)
    }
}

impl MasterKey {
    fn from_bytes(bytes: &[u8; 32]) -> MasterKey {
        use aws_lc_rs::hmac;
        let tag = hmac::sign(
            &hmac::Key::new(hmac::HMAC_SHA256, bytes),
            b"confidant master key id",
        );
        let id = tag.as_ref()[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        MasterKey {
            key: new_key(bytes),
            id,
        }
    }

    /// A key file's text: 32 bytes as base64 (standard or url-safe) or 64 hex digits.
    pub fn parse(text: &str) -> Option<MasterKey> {
        let text = text.trim();
        let bytes = if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            (0..32)
                .map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok())
                .collect::<Option<Vec<u8>>>()?
        } else {
            base64::engine::general_purpose::STANDARD
                .decode(text)
                .or_else(|_| B64.decode(text.trim_end_matches('=')))
                .ok()?
        };
        Some(MasterKey::from_bytes(&bytes.try_into().ok()?))
    }

    /// A new random key and its file text (base64).
    pub fn generate() -> (MasterKey, String) {
        let bytes = random_key();
        let text = base64::engine::general_purpose::STANDARD.encode(bytes);
        (MasterKey::from_bytes(&bytes), text)
    }

    /// Read a key file (`None` if there is no file).
    pub fn read(path: &Path) -> anyhow::Result<Option<MasterKey>> {
        match std::fs::read_to_string(path) {
            Ok(text) => MasterKey::parse(&text).map(Some).with_context(|| {
                format!(
                    "the master key file {} does not hold a 32-byte key (base64 or hex)",
                    path.display()
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e)
                .with_context(|| format!("cannot read the master key file {}", path.display())),
        }
    }

    /// The key's id: the first 8 bytes of HMAC-SHA256(key, "confidant master key id"), in hex.
    /// It names the key without revealing it.
    pub fn id(&self) -> &str {
        &self.id
    }

    fn wrap_aad(&self, site: i64, version: i64) -> String {
        format!("data_keys.wrapped|{site}|{version}|{}", self.id)
    }

    fn wrap(&self, site: i64, version: i64, data_key: &[u8; 32]) -> String {
        let aad = self.wrap_aad(site, version);
        format!("{PREFIX}.{}", seal_raw(&self.key, aad.as_bytes(), data_key))
    }

    fn unwrap(&self, site: i64, version: i64, text: &str) -> Result<[u8; 32], VaultError> {
        let aad = self.wrap_aad(site, version);
        let body = text.strip_prefix("v1.").ok_or(VaultError::NotSealed)?;
        let bytes = open_raw(&self.key, aad.as_bytes(), body).ok_or_else(|| {
            VaultError::DoesNotOpen(format!(
                "the data key of site {site} does not unwrap under master key {}",
                self.id
            ))
        })?;
        bytes.try_into().map_err(|_| {
            VaultError::DoesNotOpen(format!("the data key of site {site} is not 32 bytes"))
        })
    }
}

fn random_key() -> [u8; 32] {
    let mut bytes = [0u8; 32];
    // Without the system's random source there is nothing safe to do.
    aws_lc_rs::rand::fill(&mut bytes).expect("the system's random source");
    bytes
}

fn new_key(bytes: &[u8; 32]) -> RandomizedNonceKey {
    // 32 bytes is always a valid AES-256 key.
    RandomizedNonceKey::new(&AES_256_GCM, bytes).expect("a 32-byte AES-256-GCM key")
}

/// base64url(nonce ‖ ciphertext ‖ tag), with a random 96-bit nonce.
fn seal_raw(key: &RandomizedNonceKey, aad: &[u8], bytes: &[u8]) -> String {
    let mut in_out = bytes.to_vec();
    // Sealing fails only for inputs over 64 GiB.
    let nonce = key
        .seal_in_place_append_tag(Aad::from(aad), &mut in_out)
        .expect("seal");
    let mut out = Vec::with_capacity(NONCE_LEN + in_out.len());
    out.extend_from_slice(nonce.as_ref());
    out.extend_from_slice(&in_out);
    B64.encode(out)
}

fn open_raw(key: &RandomizedNonceKey, aad: &[u8], text: &str) -> Option<Vec<u8>> {
    let mut bytes = B64.decode(text).ok()?;
    if bytes.len() < NONCE_LEN {
        return None;
    }
    let mut in_out = bytes.split_off(NONCE_LEN);
    let nonce = Nonce::try_assume_unique_for_key(&bytes).ok()?;
    let plain = key.open_in_place(nonce, Aad::from(aad), &mut in_out).ok()?;
    let len = plain.len();
    in_out.truncate(len);
    Some(in_out)
}

/// The place a value is stored at, bound into its ciphertext as AAD.
pub fn place(column: &str, row: impl std::fmt::Display) -> String {
    format!("{column}|{row}")
}

/// The store's keys: the master key and the data keys unwrapped so far.
pub struct Vault {
    master: MasterKey,
    read: AnyPool,
    write: AnyPool,
    keys: RwLock<HashMap<(i64, i64), Arc<RandomizedNonceKey>>>,
}

impl Vault {
    pub(crate) fn new(master: MasterKey, read: AnyPool, write: AnyPool) -> Vault {
        Vault {
            master,
            read,
            write,
            keys: RwLock::new(HashMap::new()),
        }
    }

    pub fn master_id(&self) -> &str {
        self.master.id()
    }

    fn cached(&self, site: i64, version: i64) -> Option<Arc<RandomizedNonceKey>> {
        self.keys
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&(site, version))
            .cloned()
    }

    /// The data key `(site, version)` wrapped under this master key, unwrapped (cached).
    async fn load(
        &self,
        site: i64,
        version: i64,
    ) -> Result<Option<Arc<RandomizedNonceKey>>, VaultError> {
        if let Some(k) = self.cached(site, version) {
            return Ok(Some(k));
        }
        let rows = sqlx::query(
            "SELECT master_id, wrapped FROM data_keys WHERE site_id = $1 AND version = $2",
        )
        .bind(site)
        .bind(version)
        .fetch_all(&self.read)
        .await?;
        let mut others = false;
        for r in &rows {
            let master: String = r.try_get("master_id")?;
            if master != self.master.id {
                others = true;
                continue;
            }
            let wrapped: String = r.try_get("wrapped")?;
            let key = Arc::new(new_key(&self.master.unwrap(site, version, &wrapped)?));
            self.keys
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .insert((site, version), key.clone());
            return Ok(Some(key));
        }
        if others {
            return Err(VaultError::NotWrappedForUs {
                site,
                ours: self.master.id.clone(),
            });
        }
        Ok(None)
    }

    /// Make sure the sealing key of each site is in memory, creating the ones missing. The
    /// send writer calls this before it takes its connection (on SQLite the only writing one).
    pub async fn ensure(&self, sites: &[SiteId]) -> Result<(), VaultError> {
        for &site in sites {
            if self.cached(site.0, DATA_KEY_VERSION).is_none() {
                self.sealing_key(site).await?;
            }
        }
        Ok(())
    }

    async fn sealing_key(&self, site: SiteId) -> Result<Arc<RandomizedNonceKey>, VaultError> {
        if let Some(k) = self.load(site.0, DATA_KEY_VERSION).await? {
            return Ok(k);
        }
        // A new data key. Inserted only if no process made one first (under any master key);
        // then read back, so every process uses the one that won.
        let wrapped = self.master.wrap(site.0, DATA_KEY_VERSION, &random_key());
        sqlx::query(
            "INSERT INTO data_keys (site_id, version, master_id, wrapped, created_at) \
             SELECT $1, $2, $3, $4, $5 WHERE NOT EXISTS \
             (SELECT 1 FROM data_keys WHERE site_id = $1 AND version = $2)",
        )
        .bind(site.0)
        .bind(DATA_KEY_VERSION)
        .bind(&self.master.id)
        .bind(wrapped)
        .bind(confidant_core::time_fmt::now_millis())
        .execute(&self.write)
        .await?;
        self.load(site.0, DATA_KEY_VERSION)
            .await?
            .ok_or(VaultError::NoDataKey(site.0))
    }

    /// Seal `bytes` for `site`, bound to `place` (see [`place`]).
    pub async fn seal(
        &self,
        site: SiteId,
        place: &str,
        bytes: &[u8],
    ) -> Result<String, VaultError> {
        let key = self.sealing_key(site).await?;
        Ok(sealed(&key, site, place, bytes))
    }

    /// The same, with a key already in memory (`ensure`): for code that holds a connection.
    pub fn seal_loaded(
        &self,
        site: SiteId,
        place: &str,
        bytes: &[u8],
    ) -> Result<String, VaultError> {
        let key = self
            .cached(site.0, DATA_KEY_VERSION)
            .ok_or(VaultError::NoDataKey(site.0))?;
        Ok(sealed(&key, site, place, bytes))
    }

    /// Open a value sealed by `seal` for the same `place`.
    pub async fn open(&self, place: &str, text: &str) -> Result<Vec<u8>, VaultError> {
        let (site, version, body) = parse_sealed(text).ok_or(VaultError::NotSealed)?;
        let key = self
            .load(site, version)
            .await?
            .ok_or(VaultError::NoDataKey(site))?;
        open_raw(&key, place.as_bytes(), body).ok_or_else(|| {
            VaultError::DoesNotOpen(place.split('|').next().unwrap_or("").to_owned())
        })
    }

    pub async fn seal_text(
        &self,
        site: SiteId,
        place: &str,
        text: &str,
    ) -> Result<String, VaultError> {
        self.seal(site, place, text.as_bytes()).await
    }

    pub async fn open_text(&self, place: &str, text: &str) -> Result<String, VaultError> {
        String::from_utf8(self.open(place, text).await?)
            .map_err(|_| VaultError::DoesNotOpen("not UTF-8".into()))
    }

    /// Open a message row's body in place (rows are read with the body sealed).
    pub(crate) async fn open_message(&self, m: &mut MessageRow) -> Result<(), VaultError> {
        m.body = self
            .open_text(&message_place(m.message_id), &m.body)
            .await?;
        for a in &mut m.attachments {
            a.filename = self
                .open_text(&attachment_name_place(a.attachment_id), &a.filename)
                .await?;
        }
        Ok(())
    }

    /// The key that seals attachment bytes of `site` now (made if the site has none yet).
    pub async fn blob_key(&self, site: SiteId) -> Result<BlobKey, VaultError> {
        Ok(BlobKey {
            key: self.sealing_key(site).await?,
            version: DATA_KEY_VERSION,
        })
    }

    /// The key that sealed attachment bytes of `site` under data-key `version`.
    pub async fn blob_key_version(
        &self,
        site: SiteId,
        version: i64,
    ) -> Result<BlobKey, VaultError> {
        let key = self
            .load(site.0, version)
            .await?
            .ok_or(VaultError::NoDataKey(site.0))?;
        Ok(BlobKey { key, version })
    }

    /// Check, at start, that this master key opens what is stored: every data key must have
    /// a wrap under it, and those wraps must open.
    pub(crate) async fn check(&self) -> anyhow::Result<()> {
        let rows = sqlx::query("SELECT site_id, version, master_id, wrapped FROM data_keys")
            .fetch_all(&self.read)
            .await?;
        let mut ours = std::collections::HashSet::new();
        let mut all = std::collections::HashSet::new();
        let mut others = std::collections::BTreeSet::new();
        for r in &rows {
            let (site, version): (i64, i64) = (r.try_get("site_id")?, r.try_get("version")?);
            let master: String = r.try_get("master_id")?;
            all.insert((site, version));
            if master == self.master.id {
                let wrapped: String = r.try_get("wrapped")?;
                let key = self.master.unwrap(site, version, &wrapped).map_err(|_| {
                    anyhow::anyhow!(
                        "the master key (id {}) does not open the stored data: the wrap of \
                         site {site}'s data key under that id fails to open (altered?)",
                        self.master.id
                    )
                })?;
                self.keys
                    .write()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert((site, version), Arc::new(new_key(&key)));
                ours.insert((site, version));
            } else {
                others.insert(master);
            }
        }
        if ours.len() < all.len() {
            anyhow::bail!(
                "the master key (id {}) does not open the stored data: {} of {} data keys are \
                 wrapped only under master key {}; start with that key's file (or finish \
                 `confidant rotate-master-key`)",
                self.master.id,
                all.len() - ours.len(),
                all.len(),
                others.into_iter().collect::<Vec<_>>().join(", ")
            );
        }
        Ok(())
    }
}

/// A site's data key for sealing attachment bytes chunk by chunk (the chunk format is the
/// server's, `attachments/blobs.rs`): each chunk is `nonce ‖ ciphertext ‖ tag` under an AAD the
/// caller builds (attachment id, chunk index, last-chunk flag).
#[derive(Clone)]
pub struct BlobKey {
    key: Arc<RandomizedNonceKey>,
    version: i64,
}

impl std::fmt::Debug for BlobKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BlobKey(v{})", self.version)
    }
}

/// Bytes a sealed chunk adds to its plain bytes: the nonce and the tag.
pub const BLOB_CHUNK_OVERHEAD: usize = NONCE_LEN + 16;

impl BlobKey {
    /// The data-key version (kept with the attachment, to open it later).
    pub fn version(&self) -> i64 {
        self.version
    }

    /// Seal `plain` and append `nonce ‖ ciphertext ‖ tag` to `out`.
    pub fn seal_into(&self, aad: &[u8], plain: &[u8], out: &mut Vec<u8>) {
        // Sealed where it lies: the plain bytes are copied once, into `out`.
        let start = out.len();
        out.extend_from_slice(&[0u8; NONCE_LEN]);
        out.extend_from_slice(plain);
        // Sealing fails only for inputs over 64 GiB.
        let (nonce, tag) = self
            .key
            .seal_in_place_separate_tag(Aad::from(aad), &mut out[start + NONCE_LEN..])
            .expect("seal");
        out[start..start + NONCE_LEN].copy_from_slice(nonce.as_ref());
        out.extend_from_slice(tag.as_ref());
    }

    /// Open one sealed chunk in place; where in `sealed` its plain bytes now are, or `None`
    /// if it does not open.
    pub fn open_chunk(&self, aad: &[u8], sealed: &mut [u8]) -> Option<std::ops::Range<usize>> {
        if sealed.len() < BLOB_CHUNK_OVERHEAD {
            return None;
        }
        let (nonce, body) = sealed.split_at_mut(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let plain = self.key.open_in_place(nonce, Aad::from(aad), body).ok()?;
        Some(NONCE_LEN..NONCE_LEN + plain.len())
    }
}

/// Where an attachment's filename is bound to (its row, and every message that names it).
pub fn attachment_name_place(id: confidant_core::AttachmentId) -> String {
    place("attachments.filename", id)
}

/// Where a message's body is bound to.
pub(crate) fn message_place(message_id: confidant_core::MessageId) -> String {
    place("messages.body", message_id)
}

fn sealed(key: &RandomizedNonceKey, site: SiteId, place: &str, bytes: &[u8]) -> String {
    format!(
        "{PREFIX}.{}.{DATA_KEY_VERSION}.{}",
        site.0,
        seal_raw(key, place.as_bytes(), bytes)
    )
}

/// `v1.<site>.<version>.<body>` → (site, version, body).
fn parse_sealed(text: &str) -> Option<(i64, i64, &str)> {
    let mut parts = text.splitn(4, '.');
    if parts.next()? != PREFIX {
        return None;
    }
    let site = parts.next()?.parse().ok()?;
    let version = parts.next()?.parse().ok()?;
    Some((site, version, parts.next()?))
}

/// Resolve the master key at start: the file's key, or a new one written to `path` (0600) when
/// the file does not exist AND the database holds no encrypted data. Never overwrites a file.
pub(crate) async fn master_key(path: &Path, read: &AnyPool) -> anyhow::Result<MasterKey> {
    if let Some(key) = MasterKey::read(path)? {
        return Ok(key);
    }
    let stored: Option<String> = sqlx::query("SELECT master_id FROM data_keys LIMIT 1")
        .fetch_optional(read)
        .await?
        .map(|r| r.try_get("master_id"))
        .transpose()?;
    if let Some(id) = stored {
        anyhow::bail!(
            "the master key file {} does not exist, but the database holds data encrypted \
             under master key {id}: restore that file (a new key is made only for a database \
             with no encrypted data)",
            path.display()
        );
    }
    let (key, text) = MasterKey::generate();
    write_new_private(path, &text)
        .with_context(|| format!("cannot write the master key file {}", path.display()))?;
    tracing::info!(path = %path.display(), id = key.id(), "generated a new master key; keep a copy apart from database backups");
    Ok(key)
}

/// Write a new file readable by its owner only; fails if it exists.
pub fn write_new_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        crate::private_dir(dir)?;
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(text.as_bytes())?;
    f.write_all(b"\n")?;
    f.sync_all()
}

/// `confidant rotate-master-key`: wrap every data key under `new` too (keeping the wraps under
/// `old`, so processes still running with the old key keep starting); with `retire`, then drop
/// every wrap not under `new`. Returns (data keys rewrapped, wraps dropped).
pub(crate) async fn rotate(
    vault: &Vault,
    new: &MasterKey,
    retire: bool,
) -> anyhow::Result<(usize, u64)> {
    let rows = sqlx::query(
        "SELECT site_id, version, wrapped FROM data_keys WHERE master_id = $1 ORDER BY site_id, version",
    )
    .bind(vault.master_id())
    .fetch_all(&vault.write)
    .await?;
    let mut tx = vault.write.begin().await?;
    let mut rewrapped = 0;
    for r in &rows {
        let (site, version): (i64, i64) = (r.try_get("site_id")?, r.try_get("version")?);
        let wrapped: String = r.try_get("wrapped")?;
        let key = vault.master.unwrap(site, version, &wrapped)?;
        let done = sqlx::query(
            "INSERT INTO data_keys (site_id, version, master_id, wrapped, created_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (site_id, version, master_id) DO NOTHING",
        )
        .bind(site)
        .bind(version)
        .bind(new.id())
        .bind(new.wrap(site, version, &key))
        .bind(confidant_core::time_fmt::now_millis())
        .execute(&mut *tx)
        .await?;
        rewrapped += done.rows_affected() as usize;
    }
    let mut dropped = 0;
    if retire {
        // Every data key must have a wrap under the new key before any other wrap goes.
        let missing: i64 = sqlx::query(
            "SELECT COUNT(*) AS n FROM (SELECT DISTINCT site_id, version FROM data_keys) k \
             WHERE NOT EXISTS (SELECT 1 FROM data_keys d WHERE d.site_id = k.site_id \
             AND d.version = k.version AND d.master_id = $1)",
        )
        .bind(new.id())
        .fetch_one(&mut *tx)
        .await?
        .try_get("n")?;
        if missing > 0 {
            anyhow::bail!(
                "{missing} data keys are wrapped under neither the old nor the new master key \
                 given; nothing was retired"
            );
        }
        dropped = sqlx::query("DELETE FROM data_keys WHERE master_id <> $1")
            .bind(new.id())
            .execute(&mut *tx)
            .await?
            .rows_affected();
    }
    // Every site's audit log records it (the master key guards every site's data).
    crate::audit::append_audit_to_every_site(
        &mut tx,
        confidant_core::time_fmt::now_millis(),
        &crate::Actor::Operator,
        "keys.rotated",
        &serde_json::json!({"key": "master key", "keyId": new.id(), "oldKeysRetired": retire}),
    )
    .await?;
    tx.commit().await?;
    Ok((rewrapped, dropped))
}

impl crate::Store {
    /// Seal the values of `rows` that are stored in clear, in place, in one transaction:
    /// `(table, column, key column)` says where they are; each row holds its key as `id`, its
    /// site as `site_id` and the value as stored as `value`; `clear` turns a value stored in
    /// clear into its bytes. A value that already opens is left as it is. Returns how many
    /// were sealed.
    ///
    /// One commit for the chunk, not one per value: each commit fsyncs SQLite's WAL (strace
    /// counted one fsync per value), and sealing 1,000,000 messages that way took about 16
    /// minutes of start-up instead of about 80 s (docs/PERFORMANCE.md, "Start-up").
    async fn seal_rows(
        &self,
        (table, column, key): (&'static str, &'static str, &'static str),
        rows: &[sqlx::any::AnyRow],
        clear: impl Fn(&str) -> anyhow::Result<Vec<u8>>,
    ) -> anyhow::Result<usize> {
        // Sealed before the transaction begins: a site's first data key is written through
        // the writer (one connection on SQLite), which the transaction will hold.
        let mut sealed = Vec::new();
        for r in rows {
            let (id, stored): (String, String) = (r.try_get("id")?, r.try_get("value")?);
            let site = SiteId(r.try_get("site_id")?);
            let place = place(&format!("{table}.{column}"), &id);
            if self.vault.open(&place, &stored).await.is_err() {
                let text = self.vault.seal(site, &place, &clear(&stored)?).await?;
                sealed.push((id, text));
            }
        }
        // The names are this module's literals, never input.
        let sql = format!("UPDATE {table} SET {column} = $1 WHERE {key} = $2");
        let mut tx = self.write.begin().await?;
        for (id, text) in &sealed {
            sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
                .bind(text)
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(sealed.len())
    }

    /// An upgrade from a database that kept values in clear (marked by migration 0003): seal
    /// them in place, in chunks, then drop the mark. A value that already opens is left as it
    /// is, so a run interrupted part-way simply goes on at the next start. After this, every
    /// read expects sealed values: there is no clear form to fall back to.
    pub(crate) async fn seal_clear_data(&self) -> anyhow::Result<()> {
        let marked = sqlx::query("SELECT value FROM vault_state WHERE name = 'clear_data'")
            .fetch_optional(&self.read)
            .await?
            .is_some();
        if !marked {
            return Ok(());
        }
        tracing::info!("sealing the values an older version stored in clear");
        let mut sealed = 0usize;
        let text = |s: &str| Ok(s.as_bytes().to_vec());
        // Messages, by id (keyset pages of 500), with their conversation's site.
        let mut after = String::new();
        loop {
            let rows = sqlx::query(
                "SELECT m.message_id AS id, c.site_id, m.body AS value FROM messages m \
                 JOIN conversations c ON c.conversation_id = m.conversation_id \
                 WHERE m.message_id > $1 ORDER BY m.message_id LIMIT 500",
            )
            .bind(&after)
            .fetch_all(&self.read)
            .await?;
            let Some(last) = rows.last() else { break };
            after = last.try_get("id")?;
            sealed += self
                .seal_rows(("messages", "body", "message_id"), &rows, text)
                .await?;
        }
        let rows =
            sqlx::query("SELECT messenger_id AS id, site_id, security AS value FROM messengers")
                .fetch_all(&self.read)
                .await?;
        sealed += self
            .seal_rows(("messengers", "security", "messenger_id"), &rows, text)
            .await?;
        let rows = sqlx::query(
            "SELECT kid AS id, CAST($1 AS BIGINT) AS site_id, pkcs8 AS value FROM signing_keys",
        )
        .bind(SYSTEM_SITE.0)
        .fetch_all(&self.read)
        .await?;
        let pkcs8 = |s: &str| {
            base64::engine::general_purpose::STANDARD
                .decode(s.trim())
                .context("a signing key stored in clear is not base64")
        };
        sealed += self
            .seal_rows(("signing_keys", "pkcs8", "kid"), &rows, pkcs8)
            .await?;
        sqlx::query("DELETE FROM vault_state WHERE name = 'clear_data'")
            .execute(&self.write)
            .await?;
        // The clear values may live on in freed pages (SQLite) or dead row versions
        // (PostgreSQL) until they are rewritten: rewrite them now, once.
        let compact = match self.backend {
            crate::Backend::Sqlite => {
                "PRAGMA wal_checkpoint(TRUNCATE); VACUUM; PRAGMA wal_checkpoint(TRUNCATE);"
            }
            crate::Backend::Postgres => "VACUUM FULL messages, messengers, signing_keys",
        };
        sqlx::raw_sql(compact).execute(&self.write).await?;
        tracing::info!(values = sealed, "sealed the values stored in clear");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    use crate::batch::tests::{contact_send, finish, stores};

    #[tokio::test]
    async fn a_sealed_value_moved_to_another_row_does_not_open() {
        for (backend, f) in stores().await {
            let a = f
                .store
                .send(contact_send(&f, 0, "a", None))
                .await
                .expect("a");
            let b = f
                .store
                .send(contact_send(&f, 0, "b", None))
                .await
                .expect("b");
            let c = a.conversation.conversation_id;
            let stored = |id: confidant_core::MessageId| {
                let store = f.store.clone();
                async move {
                    sqlx::query("SELECT body FROM messages WHERE message_id = $1")
                        .bind(id.to_string())
                        .fetch_one(&store.read)
                        .await
                        .expect("row")
                        .try_get::<String, _>("body")
                        .expect("body")
                }
            };
            let sealed_a = stored(a.message.message_id).await;
            assert!(sealed_a.starts_with("v1."), "{backend}: {sealed_a}");
            assert!(!sealed_a.contains("body a"), "{backend}");
            let read = f.store.messages(f.site, c, 0, 10).await.expect("read");
            assert_eq!(read[1].body, "body b", "{backend}: bodies open on read");

            // Message a's ciphertext copied over message b's: same key, wrong place.
            sqlx::query("UPDATE messages SET body = $1 WHERE message_id = $2")
                .bind(&sealed_a)
                .bind(b.message.message_id.to_string())
                .execute(&f.store.write)
                .await
                .expect("copy");
            let moved = f.store.messages(f.site, c, 0, 10).await;
            assert!(
                matches!(moved, Err(StoreError::Corrupt(_))),
                "{backend}: {moved:?}"
            );
            // A messenger's sealed Security JSON does not open as another's either.
            let other = f
                .store
                .create_messenger(f.site, "other", r#"{"secret":"s3cr3t"}"#, 1, None)
                .await
                .expect("messenger");
            let sealed: String =
                sqlx::query("SELECT security FROM messengers WHERE messenger_id = $1")
                    .bind(other.messenger_id.to_string())
                    .fetch_one(&f.store.read)
                    .await
                    .expect("row")
                    .try_get("security")
                    .expect("security");
            assert!(!sealed.contains("s3cr3t"), "{backend}");
            sqlx::query("UPDATE messengers SET security = $1 WHERE messenger_id = $2")
                .bind(&sealed)
                .bind(f.messenger.to_string())
                .execute(&f.store.write)
                .await
                .expect("copy");
            let moved = f.store.get_messenger(f.site, f.messenger).await;
            assert!(
                matches!(moved, Err(StoreError::Corrupt(_))),
                "{backend}: {moved:?}"
            );
            finish(f).await;
        }
    }

    #[tokio::test]
    async fn values_an_older_version_stored_in_clear_are_sealed_on_the_next_start() {
        for (backend, mut f) in stores().await {
            // More messages than one chunk of the upgrade holds (500).
            let first = f
                .store
                .send(contact_send(&f, 0, "0", None))
                .await
                .expect("send");
            let c = first.conversation.conversation_id;
            for i in 1..600 {
                let req = contact_send(&f, 0, &i.to_string(), Some(&c));
                f.store.send(req).await.expect("send");
            }
            // What an older version wrote: the same rows in clear, and migration 0003's mark.
            let pkcs8 = b"not really a key, but bytes all the same";
            for (sql, value) in [
                ("UPDATE messages SET body = $1", "the clear body".to_owned()),
                (
                    "UPDATE messengers SET security = $1",
                    r#"{"sharedToken":"clear-token"}"#.to_owned(),
                ),
                (
                    "INSERT INTO signing_keys (kid, pkcs8, created_at) VALUES ('old', $1, 1)",
                    base64::engine::general_purpose::STANDARD.encode(pkcs8),
                ),
                (
                    "INSERT INTO vault_state (name, value) VALUES ('clear_data', $1)",
                    "x".into(),
                ),
            ] {
                sqlx::query(sql)
                    .bind(value)
                    .execute(&f.store.write)
                    .await
                    .expect(sql);
            }
            f.store.close().await;

            f.store = crate::Store::connect(&f.url, Duration::from_secs(5), &f.key_file)
                .await
                .expect("reopen");
            let read = f
                .store
                .messages(f.site, c, 0, 1000)
                .await
                .expect("messages");
            assert_eq!(read.len(), 600, "{backend}");
            assert!(read.iter().all(|m| m.body == "the clear body"), "{backend}");
            let m = f
                .store
                .get_messenger(f.site, f.messenger)
                .await
                .expect("get");
            assert_eq!(
                m.expect("messenger").security,
                r#"{"sharedToken":"clear-token"}"#
            );
            let keys = f.store.signing_keys().await.expect("keys");
            assert!(keys.iter().any(|k| k.pkcs8 == pkcs8), "{backend}");
            let clear: i64 =
                sqlx::query("SELECT COUNT(*) AS n FROM messages WHERE body = 'the clear body'")
                    .fetch_one(&f.store.read)
                    .await
                    .expect("count")
                    .try_get("n")
                    .expect("n");
            assert_eq!(clear, 0, "{backend}");
            if backend == "sqlite" {
                f.store.close().await;
                let path = f.url.trim_start_matches("sqlite://");
                let file = std::fs::read(path.split('?').next().expect("path")).expect("file");
                for clear in [&b"the clear body"[..], b"clear-token", b"bm90IHJlYWxseS"] {
                    assert!(!file.windows(clear.len()).any(|w| w == clear), "{clear:?}");
                }
            }
            finish(f).await;
        }
    }

    #[test]
    fn a_master_key_reads_as_base64_or_hex_and_its_id_names_it() {
        let (key, text) = MasterKey::generate();
        let again = MasterKey::parse(&text).expect("base64");
        assert_eq!(key.id(), again.id());
        let hex = "00".repeat(32);
        let zero = MasterKey::parse(&hex).expect("hex");
        assert_ne!(zero.id(), key.id());
        assert!(MasterKey::parse("too short").is_none());
        assert!(MasterKey::parse(&"00".repeat(31)).is_none());
        // A wrap opens under its key only, and only for its site.
        let data = random_key();
        let wrapped = key.wrap(5, 1, &data);
        assert_eq!(key.unwrap(5, 1, &wrapped).expect("opens"), data);
        assert!(key.unwrap(6, 1, &wrapped).is_err());
        assert!(zero.unwrap(5, 1, &wrapped).is_err());
    }
}
