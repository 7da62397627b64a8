//! PostgreSQL: the connection pool, the schema migrations, and (one file per
//! aggregate) the queries.

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use deadpool_postgres::{GenericClient, Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use secrecy::{ExposeSecret, SecretString};
use tokio_postgres::types::ToSql;
use tokio_postgres::{NoTls, Row};
use uuid::Uuid;

pub mod deliveries;
pub mod forms;
pub mod notifications;
pub mod processes;
pub mod retention;

mod embedded {
    refinery::embed_migrations!("migrations");
}

/// Serializes migrations across replicas that start together. Any constant works as
/// long as it stays the same: it names ramp's migration lock in `pg_locks`.
const MIGRATION_LOCK: i64 = 0x7261_6d70_6d69_6772; // "rampmigr"

/// A store failure. Details are for the log; clients see only that the database is
/// unavailable.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database pool: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error("database: {}", describe(.0))]
    Db(#[from] tokio_postgres::Error),
    #[error("migration: {0}")]
    Migration(#[from] refinery::Error),
    #[error("database did not answer within {0:?}")]
    Timeout(Duration),
    /// A stored word this release does not know (a state, a reason): a bug, or a
    /// newer release's data. Never read as some other value.
    #[error("unknown {column} in the database: {value:?}")]
    Decode { column: &'static str, value: String },
}

/// The pool and what is needed to open connections outside it (migrations, LISTEN).
#[derive(Clone)]
pub struct Store {
    pool: Pool,
    /// Shared: every open stream holds a clone of the store.
    pg_config: std::sync::Arc<tokio_postgres::Config>,
    timeout: Duration,
}

impl Store {
    /// Builds a pool; no connection is opened until one is needed.
    pub fn new(url: &SecretString, max_size: usize, timeout: Duration) -> Result<Self, StoreError> {
        let mut pg_config = tokio_postgres::Config::from_str(url.expose_secret())?;
        if pg_config.get_application_name().is_none() {
            pg_config.application_name("ramp");
        }
        pg_config.connect_timeout(timeout);
        // Statements are prepared once per connection (prepare_cached) but planned
        // for each call's parameters, as unnamed statements are: the optional
        // filters (`$1 IS NULL OR ...`) need the actual values to use an index.
        let options = match pg_config.get_options() {
            Some(options) => format!("{options} -c plan_cache_mode=force_custom_plan"),
            None => "-c plan_cache_mode=force_custom_plan".to_owned(),
        };
        pg_config.options(&options);
        let manager = Manager::from_config(
            pg_config.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(max_size)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(timeout))
            .create_timeout(Some(timeout))
            .recycle_timeout(Some(timeout))
            .build()
            .expect("a runtime is set, so the pool builds");
        Ok(Self {
            pool,
            pg_config: std::sync::Arc::new(pg_config),
            timeout,
        })
    }

    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// A pooled connection, waiting at most the configured timeout.
    pub async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        Ok(self.pool.get().await?)
    }

    /// Applies pending migrations on a connection of its own, holding a session
    /// advisory lock so that replicas starting together migrate one after the other
    /// (the later ones find nothing left to do). The lock goes with the connection,
    /// so a replica that dies mid-way does not block the others.
    #[tracing::instrument(name = "store.migrate", skip_all)]
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let (mut client, connection) =
            tokio::time::timeout(self.timeout, self.pg_config.connect(NoTls))
                .await
                .map_err(|_| StoreError::Timeout(self.timeout))??;
        let driver = tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::warn!(%error, "migration connection ended");
            }
        });
        client
            .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
            .await?;
        let ahead = newer_release_migrated(&client).await;
        let report = match &ahead {
            Ok(ahead) => {
                if let Some(version) = ahead {
                    // A rolling upgrade (or a rollback) runs this replica beside a
                    // newer release that migrated already: its migrations only
                    // expanded the schema this release knows (migrations/README.md),
                    // so serve on it rather than refuse.
                    tracing::warn!(
                        database_version = version,
                        "the database was migrated by a newer release of ramp; applying nothing"
                    );
                }
                Some(
                    embedded::migrations::runner()
                        .set_abort_divergent(true)
                        .set_abort_missing(ahead.is_none())
                        .run_async(&mut client)
                        .await,
                )
            }
            Err(_) => None,
        };
        let unlocked = client
            .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
            .await;
        drop(client);
        let _ = driver.await;
        ahead?;
        let report = report.expect("ran when the history was read")?;
        unlocked?;
        for migration in report.applied_migrations() {
            tracing::info!(
                version = migration.version(),
                name = migration.name(),
                "migration applied"
            );
        }
        Ok(())
    }

    /// A connection of its own, outside the pool (for LISTEN), and its driver, which
    /// the caller polls.
    async fn connect_unpooled(
        &self,
    ) -> Result<
        (
            tokio_postgres::Client,
            tokio_postgres::Connection<tokio_postgres::Socket, tokio_postgres::tls::NoTlsStream>,
        ),
        StoreError,
    > {
        tokio::time::timeout(self.timeout, self.pg_config.connect(NoTls))
            .await
            .map_err(|_| StoreError::Timeout(self.timeout))?
            .map_err(StoreError::from)
    }

    /// A round trip to the database, bounded by the configured timeout.
    #[tracing::instrument(name = "store.ping", skip_all)]
    pub async fn ping(&self) -> Result<(), StoreError> {
        let check = async {
            let client = self.pool.get().await?;
            client.simple_query("SELECT 1").await?;
            Ok::<_, StoreError>(())
        };
        tokio::time::timeout(self.timeout, check)
            .await
            .map_err(|_| StoreError::Timeout(self.timeout))?
    }
}

/// The newest migration version applied to the database when it is newer than any
/// this release has; `None` otherwise (also on a fresh database).
async fn newer_release_migrated(
    client: &tokio_postgres::Client,
) -> Result<Option<i32>, StoreError> {
    let newest_known = embedded::migrations::runner()
        .get_migrations()
        .iter()
        .map(|m| m.version())
        .max()
        .unwrap_or(0);
    let has_history: bool = client
        .query_one(
            "SELECT to_regclass('refinery_schema_history') IS NOT NULL",
            &[],
        )
        .await?
        .get(0);
    if !has_history {
        return Ok(None);
    }
    let applied: Option<i32> = client
        .query_one("SELECT max(version) FROM refinery_schema_history", &[])
        .await?
        .get(0);
    Ok(applied.filter(|&v| v > newest_known))
}

/// The constraint a unique violation broke, if `error` is one. Postgres errors are
/// told apart here, in one place.
pub(crate) fn unique_violation(error: &tokio_postgres::Error) -> Option<&str> {
    let db = error.as_db_error()?;
    if db.code() == &tokio_postgres::error::SqlState::UNIQUE_VIOLATION {
        db.constraint()
    } else {
        None
    }
}

/// A statement's parameters.
type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

/// The rows `sql` returns, each read by `read`. Statements are prepared once per
/// connection.
async fn fetch_all<T>(
    client: &impl GenericClient,
    sql: &str,
    params: Params<'_>,
    read: impl Fn(&Row) -> Result<T, StoreError>,
) -> Result<Vec<T>, StoreError> {
    client
        .query(&client.prepare_cached(sql).await?, params)
        .await?
        .iter()
        .map(read)
        .collect()
}

/// The row `sql` returns, if any, read by `read`.
async fn fetch_opt<T>(
    client: &impl GenericClient,
    sql: &str,
    params: Params<'_>,
    read: impl FnOnce(&Row) -> Result<T, StoreError>,
) -> Result<Option<T>, StoreError> {
    client
        .query_opt(&client.prepare_cached(sql).await?, params)
        .await?
        .as_ref()
        .map(read)
        .transpose()
}

/// A row's first column.
fn first<T: for<'a> tokio_postgres::types::FromSql<'a>>(row: &Row) -> Result<T, StoreError> {
    Ok(row.get(0))
}

/// A page's position (the last row of the previous page) as the two parameters
/// `($n::timestamptz IS NULL OR (created_at, id) > ($n, $n+1))` reads.
fn after_parameters(after: Option<(DateTime<Utc>, Uuid)>) -> (Option<DateTime<Utc>>, Option<Uuid>) {
    match after {
        Some((time, id)) => (Some(time), Some(id)),
        None => (None, None),
    }
}

/// The value a stored word names, read with `parse`: a word it does not know is a
/// [`StoreError::Decode`] naming `column`.
fn decode<T>(
    column: &'static str,
    word: &str,
    parse: impl FnOnce(&str) -> Option<T>,
) -> Result<T, StoreError> {
    parse(word).ok_or_else(|| StoreError::Decode {
        column,
        value: word.to_owned(),
    })
}

/// tokio-postgres says only "db error" for server errors; the server's message and
/// code are in the source.
fn describe(error: &tokio_postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => error.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::forms::FormState;

    #[test]
    fn a_stored_word_the_set_lacks_is_a_decode_error_naming_its_column() {
        assert_eq!(
            decode("form_tasks.status", "pending", FormState::parse).unwrap(),
            FormState::Pending
        );
        match decode("form_tasks.status", "archived", FormState::parse) {
            Err(StoreError::Decode { column, value }) => {
                assert_eq!((column, value.as_str()), ("form_tasks.status", "archived"))
            }
            other => panic!("not a decode error: {other:?}"),
        }
    }
}
