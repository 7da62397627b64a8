//! Notifications: each assignee hears by mail (and teams by a signed webhook) when a
//! form is created for them, reassigned to them or returned to them.
//!
//! The change log's trigger writes a notification in the change's own transaction
//! (`migrations/V10__notifications.sql`), so a committed change always has one and
//! a rolled-back change never does: once a replica has recorded a channel
//! ([`Notifier::register_channels`]; while none is, the trigger writes nothing,
//! `migrations/V12__notification_channels.sql`). On every replica the notifier
//! then, per channel:
//!
//! 1. gathers each due user's new notifications into one send (a user is due when
//!    their oldest new notification is `gather` old and their last send of that
//!    channel is `interval` old: at most one mail per user per interval), holding it
//!    with a lease, and commits that;
//! 2. sends it (SMTP, or an HTTP POST), naming only the forms that still wait for
//!    the user;
//! 3. marks it sent, if its lease is still its own. A failure gives the send back to
//!    be tried again later; a replica that dies leaves its lease to run out, and
//!    any replica sends it then.
//!
//! So no notification is lost, and a mail is sent twice only if the replica dies
//! (or loses the database) between the SMTP server's acceptance of the mail and the
//! mark, a window of one database round trip: at-least-once. Both copies carry the
//! same `Message-ID` (the send's id) and a webhook call the same `X-Ramp-Delivery`,
//! so a receiver can tell them for one.

use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use hmac::{Hmac, Mac};
use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use secrecy::{ExposeSecret, SecretString};
use serde_json::json;
use sha2::Sha256;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::ids::{FormTaskId, stored_words};
use crate::store::notifications::{self as rows, Channel};
use crate::store::{Store, StoreError};

stored_words!(
    /// Why a form is told of.
    NotificationEvent {
        /// It arrived.
        Created = "created",
        /// It was given to this user.
        Reassigned = "reassigned",
        /// Its answer came back: the process could not use it.
        Returned = "returned",
    }
);

stored_words!(
    /// How a send ended.
    SendEnd {
        Sent = "sent",
        /// Nothing was left to tell of (every form was answered or moved meanwhile).
        Skipped = "skipped",
        /// Given up after its attempts, with its last error.
        Failed = "failed",
    }
);

/// A send this replica holds.
#[derive(Clone, Debug)]
pub struct ClaimedSend {
    pub id: Uuid,
    pub assignee: String,
    pub generation: i64,
    pub attempts: i32,
}

/// One form a send tells of.
#[derive(Clone, Debug)]
pub struct Item {
    pub form_task_id: FormTaskId,
    pub event: NotificationEvent,
    pub title: String,
    pub process_name: Option<String>,
    pub reason: Option<String>,
    pub at: DateTime<Utc>,
}

/// The notifier's settings (`RAMP_PUBLIC_URL`, `RAMP_SMTP_*`, `RAMP_NOTIFY_*`).
#[derive(Clone, Debug)]
pub struct NotifySettings {
    /// The web UI's base, without a trailing slash.
    pub public_url: String,
    pub smtp_url: Option<SecretString>,
    pub smtp_from: String,
    pub webhook_url: Option<String>,
    pub webhook_secret: Option<SecretString>,
    pub gather: Duration,
    pub interval: Duration,
    pub lease: Duration,
    pub poll: Duration,
}

/// Attempts after which a send is given up (`failed`, with its last error).
const MAX_ATTEMPTS: i32 = 20;
/// Sends gathered or reclaimed per channel and pass.
const BATCH: i64 = 50;
/// Sends in flight at once per channel.
const CONCURRENCY: usize = 8;
/// How long notifications and ended sends are kept.
const KEEP: Duration = Duration::from_secs(7 * 24 * 60 * 60);
/// Time between two pruning passes.
const PRUNE_EVERY: Duration = Duration::from_secs(60);

/// The header that carries the webhook body's signature.
pub const SIGNATURE_HEADER: &str = "x-ramp-signature";
/// The header that names a webhook call (the same on a repeated call).
pub const DELIVERY_HEADER: &str = "x-ramp-delivery";

/// Checks an SMTP URL as lettre reads it; the message never holds the URL.
pub fn check_smtp_url(url: &str) -> Result<(), String> {
    AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
        .map(drop)
        .map_err(|e| {
            format!("is not an SMTP URL (smtp://host:port or smtps://user:password@host:port): {e}")
        })
}

/// The signature of a webhook body: `sha256=` and the hex HMAC-SHA256 under `secret`.
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let mut out = String::with_capacity(7 + 64);
    out.push_str("sha256=");
    for byte in digest {
        out.push_str(&format!("{byte:02x}"));
    }
    out
}

#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("RAMP_SMTP_URL: {0}")]
    SmtpUrl(String),
    #[error("RAMP_SMTP_FROM: {0}")]
    From(String),
    #[error("webhook client: {0}")]
    Http(#[from] reqwest::Error),
}

struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

struct Webhook {
    http: reqwest::Client,
    url: String,
    secret: SecretString,
}

/// Sends notifications on every channel that is configured; with none, it only
/// prunes old rows.
pub struct Notifier {
    store: Store,
    settings: NotifySettings,
    owner: Uuid,
    mailer: Option<Mailer>,
    webhook: Option<Webhook>,
    /// The host named in Message-IDs.
    host: String,
}

impl Notifier {
    pub fn new(store: Store, settings: NotifySettings) -> Result<Self, NotifyError> {
        // A call may take half the lease, so it ends well before another replica
        // could claim the same send.
        let call_timeout = settings.lease / 2;
        let mailer = match &settings.smtp_url {
            Some(url) => {
                let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url.expose_secret())
                    .map_err(|e| NotifyError::SmtpUrl(e.to_string()))?
                    .timeout(Some(call_timeout))
                    .build();
                let from = settings
                    .smtp_from
                    .parse::<Mailbox>()
                    .map_err(|e| NotifyError::From(e.to_string()))?;
                Some(Mailer { transport, from })
            }
            None => None,
        };
        let webhook = match (&settings.webhook_url, &settings.webhook_secret) {
            (Some(url), Some(secret)) => Some(Webhook {
                http: reqwest::Client::builder().timeout(call_timeout).build()?,
                url: url.clone(),
                secret: secret.clone(),
            }),
            _ => None,
        };
        let host = reqwest::Url::parse(&settings.public_url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_owned))
            .unwrap_or_else(|| "ramp.invalid".to_owned());
        Ok(Self {
            store,
            settings,
            owner: Uuid::now_v7(),
            mailer,
            webhook,
            host,
        })
    }

    /// Whether any channel is on.
    pub fn enabled(&self) -> bool {
        self.mailer.is_some() || self.webhook.is_some()
    }

    /// Records this replica's channels in the database, so that the forms that
    /// arrive from now on are notified (nothing when no channel is on). Called once
    /// the schema is migrated, before the replica reports serving.
    pub async fn register_channels(&self) -> Result<(), StoreError> {
        let channels = self.channels();
        if channels.is_empty() {
            return Ok(());
        }
        let client = self.store.client().await?;
        rows::register_channels(&client, &channels).await
    }

    fn channels(&self) -> Vec<Channel> {
        let mut channels = Vec::new();
        if self.mailer.is_some() {
            channels.push(Channel::Mail);
        }
        if self.webhook.is_some() {
            channels.push(Channel::Webhook);
        }
        channels
    }

    pub async fn run(self, shutdown: CancellationToken) {
        if self.enabled() {
            tracing::info!(
                mail = self.mailer.is_some(),
                webhook = self.webhook.is_some(),
                "notifications on"
            );
        }
        let mut last_prune: Option<tokio::time::Instant> = None;
        loop {
            let wait = if self.enabled() {
                self.settings.poll
            } else {
                PRUNE_EVERY
            };
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
            }
            for channel in self.channels() {
                if let Err(error) = self.pass(channel).await {
                    tracing::warn!(channel = channel.as_str(), %error, "notification pass failed");
                }
            }
            if last_prune.is_none_or(|at| at.elapsed() >= PRUNE_EVERY) {
                last_prune = Some(tokio::time::Instant::now());
                if let Err(error) = self.prune().await {
                    tracing::debug!(%error, "notification pruning failed");
                }
            }
        }
    }

    async fn prune(&self) -> Result<(), StoreError> {
        let client = self.store.client().await?;
        rows::prune(&client, KEEP, 500).await?;
        Ok(())
    }

    /// Gathers, reclaims and sends once on `channel`; the number of sends handled.
    pub async fn pass(&self, channel: Channel) -> Result<usize, StoreError> {
        let mut client = self.store.client().await?;
        let tx = client.transaction().await?;
        let mut sends = rows::gather(
            &tx,
            channel,
            self.owner,
            self.settings.gather,
            self.settings.interval,
            self.settings.lease,
            BATCH,
        )
        .await?;
        tx.commit().await?;
        sends
            .extend(rows::reclaim(&client, channel, self.owner, self.settings.lease, BATCH).await?);
        drop(client);
        let count = sends.len();
        futures::stream::iter(sends)
            .for_each_concurrent(CONCURRENCY, |send| async move {
                if let Err(error) = self.send(channel, &send).await {
                    tracing::warn!(channel = channel.as_str(), send = %send.id, %error, "notification not recorded");
                }
            })
            .await;
        Ok(count)
    }

    async fn send(&self, channel: Channel, send: &ClaimedSend) -> Result<(), StoreError> {
        let items = {
            let client = self.store.client().await?;
            rows::items(&client, channel, send.id).await?
        };
        if items.is_empty() {
            let client = self.store.client().await?;
            rows::finish(&client, send, SendEnd::Skipped, None).await?;
            return Ok(());
        }
        let outcome = match channel {
            Channel::Mail => self.mail(send, &items).await,
            Channel::Webhook => self.post(send, &items).await,
        };
        let client = self.store.client().await?;
        match outcome {
            Ok(()) => {
                if !rows::finish(&client, send, SendEnd::Sent, None).await? {
                    tracing::warn!(send = %send.id, "notification sent after its lease ran out: it may be sent again");
                }
                tracing::info!(channel = channel.as_str(), send = %send.id, forms = items.len(), "notification sent");
            }
            Err(error) if send.attempts >= MAX_ATTEMPTS => {
                tracing::error!(channel = channel.as_str(), send = %send.id, %error, "notification given up");
                rows::finish(&client, send, SendEnd::Failed, Some(&error)).await?;
            }
            Err(error) => {
                let retry_in = Duration::from_secs(1 << send.attempts.clamp(0, 10))
                    .min(self.settings.interval.max(Duration::from_secs(1)));
                tracing::warn!(channel = channel.as_str(), send = %send.id, %error, retry_in_ms = retry_in.as_millis() as u64, "notification not sent");
                rows::retry_later(&client, send, &error, retry_in).await?;
            }
        }
        Ok(())
    }

    fn link(&self, form: FormTaskId) -> String {
        format!("{}/forms/{form}", self.settings.public_url)
    }

    async fn mail(&self, send: &ClaimedSend, items: &[Item]) -> Result<(), String> {
        let mailer = self.mailer.as_ref().ok_or("mail is off")?;
        let to: Mailbox = send
            .assignee
            .parse()
            .map_err(|e| format!("the assignee is no mailbox: {e}"))?;
        let (subject, body) = compose(items, |id| self.link(id));
        let message = Message::builder()
            .from(mailer.from.clone())
            .to(to)
            .subject(subject)
            .message_id(Some(format!("<{}@{}>", send.id, self.host)))
            .header(ContentType::TEXT_PLAIN)
            .body(body)
            .map_err(|e| format!("mail: {e}"))?;
        mailer
            .transport
            .send(message)
            .await
            .map(drop)
            .map_err(|e| format!("SMTP: {e}"))
    }

    async fn post(&self, send: &ClaimedSend, items: &[Item]) -> Result<(), String> {
        let webhook = self.webhook.as_ref().ok_or("the webhook is off")?;
        let forms: Vec<_> = items
            .iter()
            .map(|item| {
                json!({
                    "id": item.form_task_id,
                    "event": item.event,
                    "title": item.title,
                    "process_name": item.process_name,
                    "reason": item.reason,
                    "link": self.link(item.form_task_id),
                    "at": item.at,
                })
            })
            .collect();
        let body = serde_json::to_vec(&json!({
            "id": send.id,
            "assignee": send.assignee,
            "forms": forms,
        }))
        .map_err(|e| e.to_string())?;
        let response = webhook
            .http
            .post(&webhook.url)
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(
                SIGNATURE_HEADER,
                signature(webhook.secret.expose_secret().as_bytes(), &body),
            )
            .header(DELIVERY_HEADER, send.id.to_string())
            .body(body)
            .send()
            .await
            .map_err(|e| format!("webhook: {e}"))?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(format!("webhook answered {}", response.status()))
        }
    }
}

/// A mail's subject and text for the forms it tells of.
pub fn compose(items: &[Item], link: impl Fn(FormTaskId) -> String) -> (String, String) {
    let subject = match items {
        [one] => match one.event {
            NotificationEvent::Returned => format!("Returned to you: {}", one.title),
            _ => format!("A form waits for you: {}", one.title),
        },
        many => format!("{} forms wait for you", many.len()),
    };
    let mut body = String::from("Hello,\n\n");
    body.push_str(if items.len() == 1 {
        "a form waits for you:\n\n"
    } else {
        "these forms wait for you:\n\n"
    });
    for item in items {
        body.push_str(&format!("- {}", item.title));
        if let Some(process) = &item.process_name {
            body.push_str(&format!(" ({process})"));
        }
        match item.event {
            NotificationEvent::Reassigned => body.push_str(", given to you"),
            NotificationEvent::Returned => {
                body.push_str(", returned to you");
                if let Some(reason) = &item.reason {
                    body.push_str(&format!(": {reason}"));
                }
            }
            NotificationEvent::Created => {}
        }
        body.push_str(&format!("\n  {}\n", link(item.form_task_id)));
    }
    body.push_str("\nOpen a link to fill the form; you may be asked to sign in first.\n");
    (subject, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(event: NotificationEvent, title: &str, reason: Option<&str>) -> Item {
        Item {
            form_task_id: FormTaskId::from_uuid(Uuid::nil()),
            event,
            title: title.into(),
            process_name: Some("Qualify supplier".into()),
            reason: reason.map(str::to_owned),
            at: chrono::Utc::now(),
        }
    }

    #[test]
    fn one_form_is_named_in_the_subject() {
        let (subject, body) = compose(
            &[item(NotificationEvent::Created, "Company details", None)],
            |id| format!("https://x/forms/{id}"),
        );
        assert_eq!(subject, "A form waits for you: Company details");
        assert!(body.contains("- Company details (Qualify supplier)\n"));
        assert!(body.contains(&format!("https://x/forms/{}", Uuid::nil())));
    }

    #[test]
    fn several_forms_are_counted_and_a_return_says_why() {
        let (subject, body) = compose(
            &[
                item(NotificationEvent::Created, "A", None),
                item(
                    NotificationEvent::Returned,
                    "B",
                    Some("the score is out of range"),
                ),
            ],
            |_| "link".into(),
        );
        assert_eq!(subject, "2 forms wait for you");
        assert!(
            body.contains("- B (Qualify supplier), returned to you: the score is out of range")
        );
    }

    #[test]
    fn the_signature_is_hmac_sha256_hex() {
        // RFC 4231, test case 2.
        assert_eq!(
            signature(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
