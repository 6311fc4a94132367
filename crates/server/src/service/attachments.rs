//! Attachments (CONTRACT §11): uploads streamed into the attachment store (`crate::blobs`),
//! sealed chunk by chunk as they arrive; downloads streamed back; the checks a send that names
//! attachments needs; the sweep of uploads no message names.
//!
//! Order of writes, so that a crash never leaves a row without its bytes: an upload stores the
//! bytes (durably) before its row; the sweep deletes the row before the bytes. What a crash can
//! leave is bytes without a row, which the sweep's second pass deletes once they are older
//! than the unreferenced-upload age.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use confidant_core::time_fmt::now_millis;
use confidant_core::{AttachmentId, ContactScope, ConversationId, SiteId};
use confidant_store::{AttachmentMeta, AttachmentRow, NewAttachment, SenderType, Store};
use futures_util::stream::BoxStream;
use futures_util::{Stream, StreamExt as _};

use crate::blobs::{Blobs, ReadError};
use crate::error::{ApiError, ApiResult};

/// Unreferenced uploads are deleted after this long (CONTRACT §11).
pub const UNREFERENCED_AGE: Duration = Duration::from_secs(24 * 3600);
/// How often the sweep runs.
pub const SWEEP_EVERY: Duration = Duration::from_secs(3600);
/// At most this many attachments on one message.
pub const MAX_PER_MESSAGE: usize = 10;
/// The longest filename kept, in characters.
pub const MAX_FILENAME: usize = 200;
/// How many first bytes the type is read from.
const SNIFF: usize = 8 * 1024;

/// Who uploads, and so who owns the upload.
#[derive(Debug, Clone)]
pub enum Owner {
    /// A contact: the upload is its own until a message of its conversation names it.
    Contact(ContactScope),
    /// An agent (or the operator, the nil id), into a conversation of the site.
    Agent {
        site: SiteId,
        conversation: confidant_store::ConversationRow,
        agent: uuid::Uuid,
    },
}

/// Who reads.
#[derive(Debug, Clone, Copy)]
pub enum Reader {
    Contact(ContactScope),
    Agents(SiteId),
}

/// Who sends a message naming attachments.
#[derive(Debug, Clone, Copy)]
pub enum SendAs<'a> {
    Contact(&'a ContactScope),
    Agent {
        site: SiteId,
        conversation: ConversationId,
    },
}

/// The file part of an upload, as the edge read it from the multipart body.
pub struct Upload<S> {
    /// The client's filename (uncleaned), if it gave one.
    pub filename: Option<String>,
    /// The part's Content-Type, if it gave one.
    pub declared_type: Option<String>,
    /// The part's bytes as they arrive; an error ends the upload (and is its answer).
    pub bytes: S,
}

pub struct Attachments {
    store: Store,
    blobs: Blobs,
}

impl Attachments {
    pub fn new(store: Store, blobs: Blobs) -> Self {
        Self { store, blobs }
    }

    pub fn blobs(&self) -> &Blobs {
        &self.blobs
    }

    /// Store an upload: 403 when attachments are off, 415 for a type that is not allowed or
    /// contradicts the declared one, 413 as soon as it passes `maxBytes` (nothing is kept).
    /// Answers after the bytes are durable and the row is written.
    pub async fn upload<S>(
        &self,
        owner: &Owner,
        settings: &confidant_core::Attachments,
        upload: Upload<S>,
    ) -> ApiResult<AttachmentRow>
    where
        S: Stream<Item = ApiResult<Bytes>> + Unpin,
    {
        if !settings.enabled {
            return Err(ApiError::forbidden(
                "attachments are turned off for this messenger",
            ));
        }
        let Upload {
            filename,
            declared_type,
            bytes,
        } = upload;
        // Read to its end once; later reads see the end again.
        let mut bytes = bytes.fuse();
        let max = settings.max_bytes;
        let too_large = || {
            ApiError::new(
                axum::http::StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!("the file is larger than this messenger's limit of {max} bytes"),
            )
        };
        // The first bytes tell the type.
        let mut head: Vec<u8> = Vec::with_capacity(SNIFF);
        let mut rest: Option<Bytes> = None;
        while head.len() < SNIFF {
            match bytes.next().await {
                Some(chunk) => {
                    let chunk = chunk?;
                    let take = (SNIFF - head.len()).min(chunk.len());
                    head.extend_from_slice(&chunk[..take]);
                    if take < chunk.len() {
                        rest = Some(chunk.slice(take..));
                    }
                }
                None => break,
            }
        }
        if head.is_empty() {
            return Err(ApiError::invalid("file: is empty"));
        }
        if head.len() as u64 > max {
            return Err(too_large());
        }
        let detected = infer::get(&head);
        let content_type = check_type(
            detected.map(|t| t.mime_type()),
            declared_type.as_deref(),
            settings,
        )?;
        let extension = detected.map(|t| t.extension()).unwrap_or("bin");
        let filename = clean_filename(filename.as_deref(), extension);

        let (site, messenger, contact, conversation, uploader_type, uploader_id) = match owner {
            Owner::Contact(s) => (
                s.site,
                s.messenger,
                s.contact,
                None,
                SenderType::Contact,
                s.contact.0,
            ),
            Owner::Agent {
                site,
                conversation,
                agent,
            } => (
                *site,
                conversation.messenger_id,
                conversation.contact_id,
                Some(conversation.conversation_id),
                SenderType::Agent,
                *agent,
            ),
        };
        let id = AttachmentId::new();
        let key = self.blobs.key_for(site, id);
        let blob_key = self
            .store
            .vault()
            .blob_key(site)
            .await
            .map_err(|e| ApiError::internal(&e))?;
        let version = blob_key.version();
        let mut writer = self
            .blobs
            .writer(&key, id, blob_key)
            .await
            .map_err(|e| store_failed(&e))?;
        let mut hash = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
        let mut size: u64 = 0;
        let streamed: ApiResult<()> = async {
            let mut next = Some(Bytes::from(head));
            if let Some(r) = rest.take() {
                // `head` is full; the rest of its chunk follows it.
                let first = next.take().unwrap_or_default();
                size += first.len() as u64;
                hash.update(&first);
                writer.write(&first).await.map_err(|e| store_failed(&e))?;
                next = Some(r);
            }
            loop {
                let Some(chunk) = next.take() else {
                    match bytes.next().await {
                        Some(c) => {
                            next = Some(c?);
                            continue;
                        }
                        None => break,
                    }
                };
                size += chunk.len() as u64;
                if size > max {
                    return Err(too_large());
                }
                hash.update(&chunk);
                writer.write(&chunk).await.map_err(|e| store_failed(&e))?;
            }
            Ok(())
        }
        .await;
        if let Err(e) = streamed {
            writer.abort().await;
            return Err(e);
        }
        if let Err(e) = writer.finish().await {
            let _ = self.blobs.delete(&key).await;
            return Err(store_failed(&e));
        }
        let sha256: String = hash
            .finish()
            .as_ref()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let row = self
            .store
            .insert_attachment(&NewAttachment {
                attachment_id: id,
                site_id: site,
                messenger_id: messenger,
                contact_id: contact,
                conversation_id: conversation,
                uploader_type,
                uploader_id,
                filename,
                content_type: content_type.to_owned(),
                size: size as i64,
                sha256,
                object_key: key.clone(),
                key_version: version,
                created_at: now_millis(),
            })
            .await;
        match row {
            Ok(row) => {
                metrics::counter!("confidant_attachments_uploaded_total").increment(1);
                Ok(row)
            }
            Err(e) => {
                let _ = self.blobs.delete(&key).await;
                Err(e.into())
            }
        }
    }

    /// An attachment the reader may read, and its plain bytes as a stream; anyone else `404`.
    pub async fn download(
        &self,
        reader: Reader,
        id: AttachmentId,
    ) -> ApiResult<(AttachmentRow, BoxStream<'static, std::io::Result<Bytes>>)> {
        let site = match reader {
            Reader::Contact(s) => s.site,
            Reader::Agents(site) => site,
        };
        let a = self
            .store
            .attachment(site, id)
            .await?
            .filter(|a| may_read(&reader, a))
            .ok_or_else(|| ApiError::not_found("attachment"))?;
        let key = self
            .store
            .vault()
            .blob_key_version(a.site_id, a.key_version)
            .await
            .map_err(|e| ApiError::internal(&e))?;
        let stream = self
            .blobs
            .read(&a.object_key, a.attachment_id, a.size as u64, key)
            .await
            .map_err(|e| match e {
                ReadError::Missing => {
                    tracing::error!(attachment = %a.attachment_id, "attachment bytes missing");
                    ApiError::not_found("attachment")
                }
                ReadError::Store(e) => store_failed(&e),
                ReadError::Damaged(why) => ApiError::internal(&why),
            })?;
        Ok((a, stream))
    }

    /// The attachments a send names, checked: each exists and is the sender's to send (a
    /// contact's own upload; an agent's upload into this conversation). One already on a
    /// message passes here: the store answers a repeat of that very send, and refuses any
    /// other (`attachmentIds`).
    pub async fn for_send(
        &self,
        sender: SendAs<'_>,
        ids: &[AttachmentId],
    ) -> ApiResult<Vec<AttachmentMeta>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let site = match sender {
            SendAs::Contact(s) => s.site,
            SendAs::Agent { site, .. } => site,
        };
        let rows = self.store.attachments(site, ids).await?;
        ids.iter()
            .enumerate()
            .map(|(i, id)| {
                rows.iter()
                    .find(|a| a.attachment_id == *id)
                    .filter(|a| match sender {
                        SendAs::Contact(s) => {
                            a.uploader_type == SenderType::Contact
                                && a.contact_id == s.contact
                                && a.messenger_id == s.messenger
                        }
                        SendAs::Agent { conversation, .. } => {
                            a.uploader_type == SenderType::Agent
                                && a.conversation_id == Some(conversation)
                        }
                    })
                    .map(AttachmentRow::meta)
                    .ok_or_else(|| {
                        ApiError::invalid(format!(
                            "attachmentIds[{i}]: no such attachment of yours (upload it first)"
                        ))
                    })
            })
            .collect()
    }

    /// Delete uploads no message names that are older than `age`, then bytes that no row
    /// names and are older than `age`. Returns (rows deleted, orphaned objects deleted).
    pub async fn sweep(&self, age: Duration) -> anyhow::Result<(usize, usize)> {
        let cutoff = now_millis() - age.as_millis() as i64;
        let mut rows = 0;
        loop {
            let keys = self
                .store
                .delete_unreferenced_attachments(cutoff, 500)
                .await?;
            rows += keys.len();
            for k in &keys {
                if let Err(e) = self.blobs.delete(k).await {
                    // The orphan pass below deletes it next time.
                    tracing::warn!(error = %e, "could not delete the bytes of a swept attachment");
                }
            }
            if keys.len() < 500 {
                break;
            }
        }
        let old = self.blobs.older_than(cutoff, 5_000).await?;
        let mut orphans = 0;
        for chunk in old.chunks(500) {
            for k in self.store.unknown_object_keys(chunk).await? {
                self.blobs.delete(&k).await?;
                orphans += 1;
            }
        }
        if rows + orphans > 0 {
            tracing::info!(rows, orphans, "swept attachments no message names");
        }
        Ok((rows, orphans))
    }

    /// Run the sweep every `every`, for as long as the service lives.
    pub fn spawn_sweeper(self: &Arc<Self>, every: Duration, age: Duration) {
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(this) = weak.upgrade() else { break };
                if let Err(e) = this.sweep(age).await {
                    tracing::warn!(error = %e, "the attachment sweep failed; it runs again later");
                }
            }
        });
    }
}

fn store_failed(e: &object_store::Error) -> ApiError {
    tracing::error!(error = %e, "attachment store failed");
    ApiError::unavailable("the attachment store is not answering")
}

/// Whether `reader` may read `a`: its site's agents; the contact it belongs to once a
/// message carries it, or before that if the contact uploaded it.
fn may_read(reader: &Reader, a: &AttachmentRow) -> bool {
    match reader {
        Reader::Agents(site) => a.site_id == *site,
        Reader::Contact(s) => {
            a.site_id == s.site
                && a.messenger_id == s.messenger
                && a.contact_id == s.contact
                && (a.uploader_type == SenderType::Contact || a.message_id.is_some())
        }
    }
}

/// The upload's type: what its first bytes are. 415 when they are not recognised, not
/// allowed, or not what the part's Content-Type said.
fn check_type(
    detected: Option<&'static str>,
    declared: Option<&str>,
    settings: &confidant_core::Attachments,
) -> ApiResult<&'static str> {
    let unsupported = |m: String| {
        ApiError::new(
            axum::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            m,
        )
    };
    let allowed = settings.allowed_types.join(", ");
    let Some(detected) = detected else {
        return Err(unsupported(format!(
            "the file's type is not recognised; allowed: {allowed}"
        )));
    };
    if let Some(declared) = declared.map(normalise_type)
        && !declared.is_empty()
        && declared != "application/octet-stream"
        && declared != detected
    {
        return Err(unsupported(format!(
            "the file is {detected} but was sent as {declared}"
        )));
    }
    if !settings.allows(detected) {
        return Err(unsupported(format!(
            "{detected} files are not allowed here; allowed: {allowed}"
        )));
    }
    Ok(detected)
}

/// A declared MIME type without parameters, lowercase, with common aliases mapped.
fn normalise_type(t: &str) -> String {
    let essence = t
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match essence.as_str() {
        "image/jpg" | "image/pjpeg" => "image/jpeg".into(),
        "application/x-pdf" => "application/pdf".into(),
        "application/x-zip-compressed" => "application/zip".into(),
        "audio/wav" | "audio/wave" => "audio/x-wav".into(),
        _ => essence,
    }
}

/// The client's filename, kept as given but safe to show and to put in a header: no path
/// (only what follows the last `/` or `\`), no control or bidirectional-override characters,
/// at most `MAX_FILENAME` characters (the extension kept); `attachment.<ext>` when nothing is left.
pub fn clean_filename(given: Option<&str>, extension: &str) -> String {
    let base = given.unwrap_or("").rsplit(['/', '\\']).next().unwrap_or("");
    let cleaned: String = base
        .chars()
        .filter(|c| {
            !c.is_control()
                && !matches!(*c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
        })
        .collect();
    let cleaned = cleaned.trim().trim_start_matches('.').trim();
    if cleaned.is_empty() {
        return format!("attachment.{extension}");
    }
    if cleaned.chars().count() <= MAX_FILENAME {
        return cleaned.to_owned();
    }
    let ext: String = match cleaned.rsplit_once('.') {
        Some((_, e)) if !e.is_empty() && e.chars().count() <= 10 => format!(".{e}"),
        _ => String::new(),
    };
    let stem: String = cleaned
        .chars()
        .take(MAX_FILENAME - ext.chars().count())
        .collect();
    format!("{stem}{ext}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filenames_lose_paths_controls_and_length() {
        assert_eq!(clean_filename(Some("../../etc/passwd"), "bin"), "passwd");
        assert_eq!(
            clean_filename(Some("C:\\Users\\me\\scan.pdf"), "pdf"),
            "scan.pdf"
        );
        assert_eq!(clean_filename(Some("a\u{0}b\r\n.png"), "png"), "ab.png");
        assert_eq!(
            clean_filename(Some("evil\u{202e}gpj.exe"), "png"),
            "evilgpj.exe"
        );
        assert_eq!(clean_filename(None, "pdf"), "attachment.pdf");
        assert_eq!(clean_filename(Some("  "), "png"), "attachment.png");
        assert_eq!(clean_filename(Some(".."), "png"), "attachment.png");
        let long = format!("{}.pdf", "é".repeat(500));
        let kept = clean_filename(Some(&long), "pdf");
        assert_eq!(kept.chars().count(), MAX_FILENAME);
        assert!(kept.ends_with(".pdf"));
        assert_eq!(
            clean_filename(Some("Résumé 2026.pdf"), "pdf"),
            "Résumé 2026.pdf"
        );
    }

    #[test]
    fn the_type_is_the_signature_and_must_not_contradict_the_declared_one() {
        let settings = confidant_core::Attachments {
            enabled: true,
            ..Default::default()
        };
        let ok = |d, decl| check_type(d, decl, &settings).map_err(|e| e.code);
        assert_eq!(ok(Some("image/png"), None), Ok("image/png"));
        assert_eq!(ok(Some("image/png"), Some("image/png")), Ok("image/png"));
        assert_eq!(ok(Some("image/jpeg"), Some("image/jpg")), Ok("image/jpeg"));
        assert_eq!(
            ok(Some("image/png"), Some("application/octet-stream")),
            Ok("image/png")
        );
        assert_eq!(
            ok(Some("image/png"), Some("application/pdf")),
            Err("unsupported_media_type")
        );
        assert_eq!(
            ok(Some("application/x-msdownload"), Some("image/png")),
            Err("unsupported_media_type")
        );
        assert_eq!(ok(None, None), Err("unsupported_media_type"));
        assert_eq!(ok(Some("image/gif"), None), Err("unsupported_media_type"));
    }
}
