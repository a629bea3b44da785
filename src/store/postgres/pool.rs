//! The connection pool: at most `pool_size` connections, each with the
//! statements it has prepared; made when first needed, kept while they
//! work, dropped (and made again when needed) once broken.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_postgres::{Client, GenericClient, NoTls, Statement};

use super::error::{connect_error, engine, store_error, target};
use super::sql::{self, Table};
use crate::store::error::bug;
use crate::store::StoreError;

/// How long connecting may take unless the URL sets `connect_timeout`:
/// long enough for a server across a busy network, short enough that a
/// wrong host fails a start or a command within seconds, not minutes.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Connections to one database.
#[derive(Debug)]
pub(super) struct Pool {
    config: tokio_postgres::Config,
    /// The server, as messages show it (no password).
    pub(super) target: String,
    size: usize,
    idle: Mutex<Vec<Conn>>,
    permits: Arc<Semaphore>,
}

/// One connection and the statements prepared on it.
#[derive(Debug)]
pub(super) struct Conn {
    pub(super) client: Client,
    statements: Statements,
}

/// Statements prepared on one connection, by SQL text.
#[derive(Debug, Default)]
pub(super) struct Statements(HashMap<&'static str, Statement>);

impl Statements {
    /// The prepared form of `statement` on `table`, prepared through
    /// `client` (the connection or a transaction on it) the first time.
    pub(super) async fn get(
        &mut self,
        client: &impl GenericClient,
        table: Table,
        statement: sql::Statement,
    ) -> Result<Statement, tokio_postgres::Error> {
        self.prepared(client, table.sql(statement)).await
    }

    /// The prepared form of the SQL `text`, prepared through `client`
    /// the first time (the blob tier's statements, see `blobs`).
    pub(super) async fn prepared(
        &mut self,
        client: &impl GenericClient,
        text: &'static str,
    ) -> Result<Statement, tokio_postgres::Error> {
        if let Some(prepared) = self.0.get(text) {
            return Ok(prepared.clone());
        }
        let prepared = client.prepare(text).await?;
        self.0.insert(text, prepared.clone());
        Ok(prepared)
    }
}

impl Conn {
    /// The client and the statement cache, borrowed apart (a transaction
    /// holds the client mutably while statements are prepared).
    pub(super) fn parts(&mut self) -> (&mut Client, &mut Statements) {
        (&mut self.client, &mut self.statements)
    }
}

impl Pool {
    /// A pool for `config` (nothing connects yet).
    pub(super) fn new(mut config: tokio_postgres::Config, size: usize) -> Self {
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name("sealmail");
        }
        let target = target(&config);
        let size = size.max(1);
        Self {
            config,
            target,
            size,
            idle: Mutex::new(Vec::new()),
            permits: Arc::new(Semaphore::new(size)),
        }
    }

    /// Most connections open at once.
    pub(super) fn size(&self) -> usize {
        self.size
    }

    /// A connection: an idle one that still works, or a new one; waits
    /// while all `size` are in use.
    pub(super) async fn get(self: &Arc<Self>) -> Result<Lease, StoreError> {
        let permit = Arc::clone(&self.permits)
            .acquire_owned()
            .await
            .map_err(|_| bug("the PostgreSQL pool's semaphore was closed"))?;
        let reused = {
            let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
            std::iter::from_fn(|| idle.pop()).find(|c| !c.client.is_closed())
        };
        let conn = match reused {
            Some(conn) => conn,
            None => self.connect().await?,
        };
        Ok(Lease {
            conn: Some(conn),
            pool: Arc::clone(self),
            _permit: permit,
        })
    }

    /// A new connection, its I/O driven by a task on the engine's runtime.
    pub(super) async fn connect(&self) -> Result<Conn, StoreError> {
        let (client, connection) = self
            .config
            .connect(NoTls)
            .await
            .map_err(|e| connect_error(&self.target, &e))?;
        let shown = self.target.clone();
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                // why warn: the pool replaces the connection; an operator
                // acts only when it keeps happening.
                tracing::warn!(server = %shown, error = %super::error::describe(&e), "PostgreSQL connection lost");
            }
        });
        Ok(Conn {
            client,
            statements: Statements::default(),
        })
    }

    /// Drops every idle connection: after one broke, the others most
    /// likely broke with it (a restarted server), and each would fail
    /// one operation before the pool noticed.
    pub(super) fn discard_idle(&self) {
        self.idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }

    /// `e` met during `op`, as a [`StoreError`] naming this server.
    pub(super) fn error(&self, op: &'static str, e: &tokio_postgres::Error) -> StoreError {
        store_error(op, &self.target, e)
    }
}

/// A connection taken from the pool; back to it when dropped, unless
/// broken.
#[derive(Debug)]
pub(super) struct Lease {
    conn: Option<Conn>,
    pool: Arc<Pool>,
    _permit: OwnedSemaphorePermit,
}

impl Lease {
    /// The connection.
    pub(super) fn conn(&mut self) -> Result<&mut Conn, StoreError> {
        self.conn
            .as_mut()
            .ok_or_else(|| engine("pool", "a pooled connection was used after its return"))
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            if !conn.client.is_closed() {
                self.pool
                    .idle
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(conn);
            }
        }
    }
}
