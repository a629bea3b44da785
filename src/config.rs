//! Configuration: TOML file, `SEALMAIL_<SECTION>_<KEY>` environment
//! overrides, embedded defaults (ARCHITECTURE.md, "Outside contracts").
//!
//! The file and the environment are merged into one TOML table first and
//! only then deserialised, so that both are checked the same way: a key
//! sealmail does not know is an error that names it, whichever side it
//! came from.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

pub use web::{ProxyNet, PublicUrl};

pub mod web;

/// Prefix of the environment overrides.
const ENV_PREFIX: &str = "SEALMAIL_";
/// Top-level keys; everything else lives in a section.
const TOP_LEVEL_KEYS: [&str; 2] = ["data_dir", "hostname"];
/// Environment variables with the prefix that are not config keys.
const ENV_NOT_CONFIG: [&str; 1] = ["SEALMAIL_LOG"];

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The TOML is malformed, a key is unknown or a value has the wrong type.
    #[error("config {origin}: {message}")]
    Invalid {
        /// The file, or "environment".
        origin: String,
        /// What the TOML parser said, naming the key.
        message: String,
    },
    /// A `SEALMAIL_*` variable that names no key.
    #[error("environment variable {var} names no config key; known keys: data_dir, hostname, lmtp.listen, lmtp.max_connections, lmtp.max_connections_per_source, imap.listen, imap.tls_listen, jmap.listen, jmap.max_connections, jmap.max_connections_per_source, jmap.header_timeout, jmap.tls_listen, jmap.public_url, jmap.trusted_proxies, tls.cert, tls.key, limits.max_message_size, limits.account_quota, limits.reserved_files, limits.fanout_bytes, hooks.chain, store.master_key, store.engine, store.url, store.pool_size, lists.notice_template, metrics.listen, submission.relay, submission.username, submission.password_file")]
    UnknownEnv {
        /// The variable.
        var: String,
    },
}

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct Config {
    /// Store, master key and admin socket live here.
    pub data_dir: PathBuf,
    /// Name in protocol greetings.
    pub hostname: String,
    /// `[lmtp]`
    pub lmtp: Lmtp,
    /// `[imap]`
    pub imap: Imap,
    /// `[jmap]`
    pub jmap: Jmap,
    /// `[tls]`
    pub tls: Tls,
    /// `[limits]`
    pub limits: Limits,
    /// `[hooks]`
    pub hooks: Hooks,
    /// `[store]`
    pub store: StoreConfig,
    /// `[lists]`
    pub lists: Lists,
    /// `[metrics]`
    pub metrics: Metrics,
    /// `[submission]`
    pub submission: Submission,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("./sealmail-data"),
            hostname: "localhost".into(),
            lmtp: Lmtp::default(),
            imap: Imap::default(),
            jmap: Jmap::default(),
            tls: Tls::default(),
            limits: Limits::default(),
            hooks: Hooks::default(),
            store: StoreConfig::default(),
            lists: Lists::default(),
            metrics: Metrics::default(),
            submission: Submission::default(),
        }
    }
}

/// `[lmtp]`
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct Lmtp {
    /// Where the MTA delivers.
    pub listen: SocketAddr,
    /// Connections served at once; more wait in the listen backlog.
    /// Default 256: room for two MTAs at Postfix's highest usual LMTP
    /// concurrency (100).
    pub max_connections: usize,
    /// Connections from one address (an IPv6 /64 counts as one); more get
    /// `421 4.3.2`. Default 100: one MTA on a busy host (Postfix opens
    /// 20 to 100 from 127.0.0.1), while one address cannot take all 256.
    pub max_connections_per_source: usize,
}

impl Default for Lmtp {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 2424)),
            max_connections: 256,
            max_connections_per_source: 100,
        }
    }
}

/// `[imap]`
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct Imap {
    /// Plain IMAP (STARTTLS offered when TLS is configured).
    pub listen: SocketAddr,
    /// Implicit TLS; off by default.
    pub tls_listen: Option<SocketAddr>,
}

impl Default for Imap {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 1143)),
            tls_listen: None,
        }
    }
}

/// `[jmap]`
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct Jmap {
    /// JMAP and the management API over HTTP.
    pub listen: SocketAddr,
    /// Connections at once; more get `503`. Default 4,096: a browser
    /// keeps about six connections and an event source per user.
    pub max_connections: usize,
    /// Connections from one address (an IPv6 /64 counts as one); more
    /// get `503`. Default 256: an office behind one NAT address, while
    /// one address cannot take a sixteenth of the listener.
    pub max_connections_per_source: usize,
    /// Longest wait for a request's header, and for the next request on
    /// an idle connection, e.g. `"30s"` or a number of seconds. Default
    /// 30 s: a real client sends its header in one packet.
    #[serde(deserialize_with = "duration")]
    pub header_timeout: Duration,
    /// HTTPS with the `[tls]` certificate; off by default.
    pub tls_listen: Option<SocketAddr>,
    /// What the session object advertises (`https://mail.example.org`);
    /// unset: the request's `Host` (see [`web`]).
    pub public_url: Option<PublicUrl>,
    /// Peers whose `Forwarded` / `X-Forwarded-*` headers are believed;
    /// empty by default: nobody's.
    pub trusted_proxies: Vec<ProxyNet>,
}

impl Default for Jmap {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            max_connections: 4096,
            max_connections_per_source: 256,
            header_timeout: Duration::from_secs(30),
            tls_listen: None,
            public_url: None,
            trusted_proxies: Vec::new(),
        }
    }
}

/// A duration written as humantime text (`"30s"`, `"1m 30s"`, `"500ms"`)
/// or as a whole number of seconds.
fn duration<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Written {
        Seconds(u64),
        Text(String),
    }
    match Written::deserialize(deserializer)? {
        Written::Seconds(secs) => Ok(Duration::from_secs(secs)),
        Written::Text(text) => humantime::parse_duration(&text).map_err(|e| {
            serde::de::Error::custom(format!(
                "{text:?} is not a duration ({e}); write e.g. \"30s\" or \"500ms\""
            ))
        }),
    }
}

/// `[tls]`
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct Tls {
    /// PEM certificate chain.
    pub cert: Option<PathBuf>,
    /// PEM private key.
    pub key: Option<PathBuf>,
}

/// `[limits]`
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct Limits {
    /// Largest message accepted, in bytes. Default 50 MiB: above what
    /// common MTAs accept by default (Postfix 10 MiB, Exim 50 MiB), so that
    /// sealmail is not the narrowest point of the path.
    pub max_message_size: u64,
    /// Bytes of stored mail an account may hold unless it has a quota of
    /// its own (`sealmail account quota`); 0 for no limit. Default 10 GiB:
    /// a generous mailbox, yet one account cannot fill the disk alone.
    pub account_quota: u64,
    /// File descriptors kept free for the store below the open files
    /// limit: IMAP and JMAP close a new connection that would use one of
    /// them, LMTP one that would use the upper half. Default 1,024
    /// (at most half the limit): RocksDB's WAL and table files, blob
    /// segments and a reopen after an error fit in it.
    pub reserved_files: u64,
    /// Bytes the list fan-outs may hold in member copies at once (being
    /// sealed, sealed, being written), all lists together. Default
    /// 256 MiB ([`crate::ingest::DEFAULT_FANOUT_BYTES`]): small messages
    /// still go out in full batches, a 50 MiB message one copy at a time.
    pub fanout_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_message_size: 50 * 1024 * 1024,
            account_quota: 10 * 1024 * 1024 * 1024,
            reserved_files: 1024,
            fanout_bytes: crate::ingest::DEFAULT_FANOUT_BYTES,
        }
    }
}

impl Limits {
    /// The default quota as the store takes it (`None`: no limit).
    pub fn default_quota(&self) -> Option<u64> {
        (self.account_quota > 0).then_some(self.account_quota)
    }
}

/// `[store]`
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct StoreConfig {
    /// The server master key file (32 bytes, mode 0600; created at first
    /// start). Unset: `data_dir/master.key`. It seals mailing-list private
    /// keys; kept on other storage, a copy of the data directory alone
    /// does not reveal them.
    pub master_key: Option<PathBuf>,
    /// Which engine holds the mail: RocksDB in `data_dir` (default), or
    /// the PostgreSQL database at [`StoreConfig::url`].
    pub engine: StoreEngine,
    /// The PostgreSQL database, `postgres://user@host:port/db`; required
    /// for (and only for) `engine = "postgres"`.
    pub url: Option<StoreUrl>,
    /// Most connections to PostgreSQL this server opens. Default 16
    /// (`store::DEFAULT_POOL_SIZE`): enough for many concurrent store
    /// calls, while a few nodes stay under PostgreSQL's default
    /// `max_connections` of 100.
    pub pool_size: usize,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            master_key: None,
            engine: StoreEngine::default(),
            url: None,
            pool_size: crate::store::DEFAULT_POOL_SIZE,
        }
    }
}

/// `store.engine`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum StoreEngine {
    /// Embedded RocksDB in `data_dir` (`"rocksdb"`).
    #[default]
    Rocksdb,
    /// A PostgreSQL database shared by every node (`"postgres"`).
    Postgres,
}

/// `store.url`: a connection URL that may hold a password, so its `Debug`
/// shows everything but the password.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct StoreUrl(String);

impl StoreUrl {
    /// A URL as given.
    pub fn new(url: impl Into<String>) -> Self {
        Self(url.into())
    }

    /// The URL, password included: for connecting only, never for logs.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for StoreUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // why: `scheme://user:password@host`; the userinfo ends at the
        // last '@' before the path.
        let shown = match self.0.split_once("://") {
            Some((scheme, rest)) => {
                let authority_end = rest.find('/').unwrap_or(rest.len());
                let (authority, path) = rest.split_at(authority_end);
                match authority.rsplit_once('@') {
                    Some((userinfo, host)) => {
                        let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
                        format!("{scheme}://{user}@{host}{path}")
                    }
                    None => self.0.clone(),
                }
            }
            None => "<redacted key=value connection string>".to_string(),
        };
        write!(f, "{shown:?}")
    }
}

impl Config {
    /// The master key file: `[store] master_key`, or `data_dir/master.key`.
    pub fn master_key_path(&self) -> PathBuf {
        self.store
            .master_key
            .clone()
            .unwrap_or_else(|| self.data_dir.join("master.key"))
    }
}

/// `[lists]`
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct Lists {
    /// A text file with the body of the notice a list member without a
    /// usable certificate receives instead of mail sent encrypted to the
    /// list. Placeholders: `{list}`, `{member}`, `{subject}`,
    /// `{message_id}`, `{marker}`. Unset: the built-in text.
    pub notice_template: Option<PathBuf>,
}

/// `[metrics]`
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct Metrics {
    /// Where Prometheus scrapes `/metrics` (and load balancers ask
    /// `/healthz`, `/readyz`), e.g. `127.0.0.1:9280`. Unset (default): no
    /// such listener; the JMAP listener still answers the two health
    /// paths.
    pub listen: Option<SocketAddr>,
}

/// `[submission]`: where JMAP `EmailSubmission` sends mail (RFC 8621 §7).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct Submission {
    /// `host:port` of the operator's MTA, spoken to over SMTP (STARTTLS
    /// when it offers it). Unset (default): no sending; the session does
    /// not advertise `urn:ietf:params:jmap:submission`.
    pub relay: Option<String>,
    /// SMTP AUTH user name at the relay; unset: no AUTH.
    pub username: Option<String>,
    /// File holding the SMTP AUTH password (its first line); needed with
    /// `username`.
    pub password_file: Option<PathBuf>,
}

/// `[hooks]`
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct Hooks {
    /// Storage hooks in order.
    pub chain: Vec<String>,
}

impl Default for Hooks {
    fn default() -> Self {
        Self {
            chain: vec!["encrypt-at-rest".into()],
        }
    }
}

impl Config {
    /// Loads `file` (or the defaults when `None`) and applies the
    /// `SEALMAIL_*` variables of `env`.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let (mut table, origin) = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.to_owned(),
                    source,
                })?;
                let table = text
                    .parse::<toml::Table>()
                    .map_err(|e| ConfigError::Invalid {
                        origin: path.display().to_string(),
                        message: e.to_string(),
                    })?;
                (table, path.display().to_string())
            }
            None => (toml::Table::new(), "defaults".to_string()),
        };
        let mut from_env = false;
        for (var, value) in env {
            if apply_env(&mut table, &var, &value)? {
                from_env = true;
            }
        }
        let origin = if from_env {
            format!("{origin} + environment")
        } else {
            origin
        };
        let config =
            Config::deserialize(toml::Value::Table(table)).map_err(|e| ConfigError::Invalid {
                origin: origin.clone(),
                message: e.to_string(),
            })?;
        config
            .check()
            .map_err(|message| ConfigError::Invalid { origin, message })?;
        Ok(config)
    }

    /// Rules between keys, which deserialising alone does not check.
    fn check(&self) -> Result<(), String> {
        match (self.store.engine, &self.store.url) {
            (StoreEngine::Postgres, None) => {
                return Err("store.engine = \"postgres\" needs store.url, e.g. \"postgres://sealmail@127.0.0.1:5432/sealmail\"".into())
            }
            (StoreEngine::Rocksdb, Some(_)) => {
                return Err("store.url is set but store.engine is \"rocksdb\" (the default); set store.engine = \"postgres\" to use the database, or remove store.url".into())
            }
            _ => {}
        }
        match (&self.submission.username, &self.submission.password_file) {
            (Some(_), None) => {
                return Err("submission.username is set but submission.password_file is not; name the file that holds the relay password".into())
            }
            (None, Some(_)) => {
                return Err("submission.password_file is set but submission.username is not; set the user name the relay knows".into())
            }
            _ => {}
        }
        if self.submission.relay.is_none() && self.submission.username.is_some() {
            return Err("submission.username is set but submission.relay is not; set submission.relay = \"host:port\" of the MTA that sends".into());
        }
        if self.store.pool_size == 0 {
            return Err("store.pool_size is 0; set at least 1 (default 16)".into());
        }
        Ok(())
    }

    /// Loads with the process environment.
    pub fn from_process(file: Option<&Path>) -> Result<Self, ConfigError> {
        Self::load(file, std::env::vars())
    }
}

/// Applies one environment variable; returns whether it was a config key.
fn apply_env(table: &mut toml::Table, var: &str, value: &str) -> Result<bool, ConfigError> {
    let Some(name) = var.strip_prefix(ENV_PREFIX) else {
        return Ok(false);
    };
    if ENV_NOT_CONFIG.contains(&var) {
        return Ok(false);
    }
    let name = name.to_ascii_lowercase();
    let parsed = parse_env_value(value);
    if TOP_LEVEL_KEYS.contains(&name.as_str()) {
        table.insert(name, parsed);
        return Ok(true);
    }
    let Some((section, key)) = name.split_once('_') else {
        return Err(ConfigError::UnknownEnv { var: var.into() });
    };
    let entry = table
        .entry(section.to_string())
        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
    let toml::Value::Table(section_table) = entry else {
        return Err(ConfigError::UnknownEnv { var: var.into() });
    };
    section_table.insert(key.to_string(), parsed);
    Ok(true)
}

/// An environment value as TOML when it parses as one (numbers, arrays,
/// booleans), as a string otherwise.
fn parse_env_value(value: &str) -> toml::Value {
    format!("v = {value}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(value.to_string()))
}

#[cfg(test)]
mod tests;
