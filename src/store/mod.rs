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
pub mod starts;
pub mod user_task_watch;
pub mod user_tasks;

mod embedded {
    refinery::embed_migrations!("migrations");
}

/// Serializes migrations across replicas that start together. Any constant works as
/// long as it stays the same: it names ramp's migration lock in `pg_locks`.
const MIGRATION_LOCK: i64 = 0x7261_6d70_6d69_6772; // "rampmigr"

/// A store failure. Details are for the log; what a client is told follows from its
/// [`StoreFault`].
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

/// What a store failure means for whoever asked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreFault {
    /// The database could not be reached, did not answer in time, or gave up the
    /// work (a lost connection, a cancelled statement, a serialization conflict):
    /// the same request may pass shortly.
    Unavailable,
    /// The database answered, and the answer shows a mistake of ramp's: a broken
    /// constraint, a value that does not decode, a statement that does not fit the
    /// schema. The same request fails the same way.
    Bug,
}

impl StoreError {
    pub fn fault(&self) -> StoreFault {
        match self {
            // Whatever keeps the pool from handing out a connection (the server gone,
            // the database dropped, the login refused) leaves the database out of reach.
            Self::Pool(_) | Self::Timeout(_) => StoreFault::Unavailable,
            Self::Db(error) => postgres_fault(error),
            Self::Migration(_) | Self::Decode { .. } => StoreFault::Bug,
        }
    }
}

/// tokio-postgres tells its kinds of error apart only in words: a server error by
/// its SQLSTATE, the client's own by its message.
fn postgres_fault(error: &tokio_postgres::Error) -> StoreFault {
    if let Some(db) = error.as_db_error() {
        return sql_state_fault(db.code());
    }
    if error.is_closed() {
        return StoreFault::Unavailable;
    }
    client_fault(&error.to_string())
}

/// Classes 08 (connection), 28 (login refused), 3D (no such database), 40
/// (transaction rolled back: serialization, deadlock), 53 (insufficient resources),
/// 57 (operator intervention: shutdown, statement timeout) and 58 (system error),
/// and a lock not available, leave the database out of reach for now; everything
/// else (23 constraints, 22 data, 42 syntax and undefined names, ...) is ramp's
/// mistake.
fn sql_state_fault(state: &tokio_postgres::error::SqlState) -> StoreFault {
    let code = state.code();
    let transient = ["08", "28", "3D", "40", "53", "57", "58"]
        .iter()
        .any(|class| code.starts_with(class))
        || state == &tokio_postgres::error::SqlState::LOCK_NOT_AVAILABLE;
    if transient {
        StoreFault::Unavailable
    } else {
        StoreFault::Bug
    }
}

/// A client-side error of tokio-postgres, by its message: converting a value to or
/// from SQL, naming a column or counting parameters wrongly is ramp's mistake; the
/// rest (connecting, I/O, timeouts, TLS) is the connection's.
fn client_fault(message: &str) -> StoreFault {
    let bug = [
        "error serializing parameter",
        "error deserializing column",
        "invalid column",
        "query returned an unexpected number of",
        "expected ",
    ]
    .iter()
    .any(|start| message.starts_with(start));
    if bug {
        StoreFault::Bug
    } else {
        StoreFault::Unavailable
    }
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

/// Whether `sql` changed exactly one row: the one it names, found in the state it
/// expects.
async fn changes_one(
    client: &impl GenericClient,
    sql: &str,
    params: Params<'_>,
) -> Result<bool, StoreError> {
    Ok(client
        .execute(&client.prepare_cached(sql).await?, params)
        .await?
        == 1)
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
    use tokio_postgres::error::SqlState;

    use super::*;
    use crate::forms::FormState;

    #[test]
    fn a_lost_or_slow_database_is_unavailable() {
        for state in [
            SqlState::CONNECTION_FAILURE,
            SqlState::ADMIN_SHUTDOWN,
            SqlState::QUERY_CANCELED,
            SqlState::T_R_SERIALIZATION_FAILURE,
            SqlState::T_R_DEADLOCK_DETECTED,
            SqlState::TOO_MANY_CONNECTIONS,
            SqlState::LOCK_NOT_AVAILABLE,
            SqlState::INVALID_CATALOG_NAME,
            SqlState::INVALID_PASSWORD,
        ] {
            assert_eq!(
                sql_state_fault(&state),
                StoreFault::Unavailable,
                "{state:?}"
            );
        }
        for message in [
            "error connecting to server",
            "error communicating with the server",
            "timeout waiting for server",
        ] {
            assert_eq!(client_fault(message), StoreFault::Unavailable, "{message}");
        }
        let timeout = StoreError::Db(tokio_postgres::Error::__private_api_timeout());
        assert_eq!(timeout.fault(), StoreFault::Unavailable);
        assert_eq!(
            StoreError::Pool(deadpool_postgres::PoolError::Closed).fault(),
            StoreFault::Unavailable
        );
        let refused =
            deadpool_postgres::PoolError::Backend(tokio_postgres::Error::__private_api_timeout());
        assert_eq!(StoreError::Pool(refused).fault(), StoreFault::Unavailable);
        assert_eq!(
            StoreError::Timeout(Duration::from_secs(1)).fault(),
            StoreFault::Unavailable
        );
    }

    #[test]
    fn a_broken_constraint_or_an_undecodable_value_is_a_bug() {
        for state in [
            SqlState::UNIQUE_VIOLATION,
            SqlState::FOREIGN_KEY_VIOLATION,
            SqlState::CHECK_VIOLATION,
            SqlState::NOT_NULL_VIOLATION,
            SqlState::INVALID_TEXT_REPRESENTATION,
            SqlState::UNDEFINED_COLUMN,
            SqlState::SYNTAX_ERROR,
        ] {
            assert_eq!(sql_state_fault(&state), StoreFault::Bug, "{state:?}");
        }
        for message in [
            "error deserializing column 2",
            "error serializing parameter 0",
            "invalid column `state`",
            "query returned an unexpected number of rows",
            "expected 2 parameters but got 1",
        ] {
            assert_eq!(client_fault(message), StoreFault::Bug, "{message}");
        }
        let unknown = StoreError::Decode {
            column: "processes.state",
            value: "paused".into(),
        };
        assert_eq!(unknown.fault(), StoreFault::Bug);
    }

    /// The classification against a real PostgreSQL, when the tests have one
    /// (`RAMP_TEST_DATABASE_URL`, as `make test` sets it): the client's words for
    /// its own errors are the library's, and this pins them.
    #[tokio::test]
    async fn real_errors_are_told_apart() {
        let Ok(url) = std::env::var("RAMP_TEST_DATABASE_URL") else {
            eprintln!("RAMP_TEST_DATABASE_URL is not set: skipped");
            return;
        };
        let store = Store::new(&url.clone().into(), 2, Duration::from_secs(5)).unwrap();
        let client = store.client().await.unwrap();
        let fault = |error: tokio_postgres::Error| StoreError::from(error).fault();

        client
            .batch_execute(
                "CREATE TEMPORARY TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1)",
            )
            .await
            .unwrap();
        let duplicate = client.execute("INSERT INTO t VALUES (1)", &[]).await;
        assert_eq!(fault(duplicate.unwrap_err()), StoreFault::Bug);
        let row = client.query_one("SELECT 'x'::text", &[]).await.unwrap();
        let undecodable = row.try_get::<_, i32>(0);
        assert_eq!(fault(undecodable.unwrap_err()), StoreFault::Bug);
        let no_row = client.query_one("SELECT id FROM t WHERE id > 5", &[]).await;
        assert_eq!(fault(no_row.unwrap_err()), StoreFault::Bug);

        let gone = format!("{url} dbname=ramp_no_such_database");
        let gone = Store::new(&gone.into(), 1, Duration::from_secs(5)).unwrap();
        let unreachable = gone.client().await.map(|_| ()).unwrap_err();
        assert_eq!(unreachable.fault(), StoreFault::Unavailable);
    }

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
