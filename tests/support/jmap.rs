//! An in-process JMAP server: a real store in a temporary directory, the
//! ingest pipeline with the encrypt-at-rest hook, and `sealmail::jmap::router`
//! served by axum on 127.0.0.1:0 from a runtime on its own thread (so
//! that tests may be `#[tokio::test]`s and dropping the server never
//! drops a runtime inside one). Plus a small raw-JSON client (reqwest)
//! for what the jmap-client crate cannot express.

use std::sync::Arc;

use serde_json::{json, Value};
use tokio::sync::oneshot;

use sealmail::ingest::{DeliverError, Delivered, Envelope, HookChain, Ingest};
use sealmail::jmap::{router, JmapContext};
use sealmail::notify::Notifier;
use sealmail::store::{Account, MailStore};

pub const CORE: &str = "urn:ietf:params:jmap:core";
pub const MAIL: &str = "urn:ietf:params:jmap:mail";
pub const ENCRYPTION: &str = "urn:sealmail:params:jmap:encryption";

/// A running in-process server; stopped when dropped.
pub struct JmapServer {
    /// `http://127.0.0.1:PORT`
    pub base: String,
    pub store: Arc<MailStore>,
    pub ingest: Arc<Ingest>,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

impl JmapServer {
    /// A server whose uploads may be up to 1 MiB.
    pub fn start() -> Self {
        Self::with_max_upload(1024 * 1024)
    }

    pub fn with_max_upload(max_upload_bytes: u64) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(MailStore::open(dir.path()).unwrap());
        let notifier = Arc::new(Notifier::new());
        let chain = HookChain::from_names(&["encrypt-at-rest".into()]).unwrap();
        let ingest = Arc::new(Ingest::new(
            Arc::clone(&store),
            chain,
            Arc::clone(&notifier),
        ));
        let ctx = Arc::new(JmapContext {
            store: Arc::clone(&store),
            ingest: Arc::clone(&ingest),
            notifier,
            max_upload_bytes,
            urls: sealmail::jmap::UrlPolicy::default(),
            keyring: Arc::default(),
            relay: None,
        });
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (shutdown, stop) = oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                addr_tx.send(listener.local_addr().unwrap()).unwrap();
                axum::serve(listener, router(ctx))
                    .with_graceful_shutdown(async {
                        let _ = stop.await;
                    })
                    .await
                    .unwrap();
            });
        });
        let addr = addr_rx.recv().unwrap();
        Self {
            base: format!("http://{addr}"),
            store,
            ingest,
            shutdown: Some(shutdown),
            thread: Some(thread),
            _dir: dir,
        }
    }

    /// An account that can log in with `password`.
    pub fn account(&self, email: &str, password: &str) -> Account {
        self.store.add_account(email, Some(password), &[]).unwrap()
    }

    /// A client logged in as `email` / `password`.
    pub fn client(&self, email: &str, password: &str, account: &Account) -> Client {
        Client {
            http: reqwest::Client::new(),
            base: self.base.clone(),
            user: email.to_string(),
            password: password.to_string(),
            account_id: format!("a{}", account.id),
        }
    }

    /// Delivers `data` to `rcpt` as LMTP would.
    pub async fn deliver(&self, rcpt: &str, data: &[u8]) -> Result<Delivered, DeliverError> {
        let envelope = Envelope {
            mail_from: "sender@example.net".into(),
            lhlo: "mx.example.net".into(),
        };
        self.ingest
            .deliver(&envelope, &[rcpt.to_string()], Arc::new(data.to_vec()))
            .await
            .pop()
            .unwrap()
    }
}

impl Drop for JmapServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A raw-JSON JMAP client with Basic credentials.
pub struct Client {
    pub http: reqwest::Client,
    pub base: String,
    pub user: String,
    pub password: String,
    /// The account id the session names for this user.
    pub account_id: String,
}

impl Client {
    pub fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.http
            .get(format!("{}{path}", self.base))
            .basic_auth(&self.user, Some(&self.password))
    }

    pub fn post(&self, path: &str) -> reqwest::RequestBuilder {
        self.http
            .post(format!("{}{path}", self.base))
            .basic_auth(&self.user, Some(&self.password))
    }

    /// Posts a whole request object; returns status and body.
    pub async fn request(&self, body: &Value) -> (u16, Value) {
        let resp = self.post("/jmap/api").json(body).send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap())
    }

    /// Runs `calls` (`[[name, args, id], ...]`) with all three capabilities.
    pub async fn calls(&self, calls: Value) -> Vec<Value> {
        let body = json!({ "using": [CORE, MAIL, ENCRYPTION], "methodCalls": calls });
        let (status, out) = self.request(&body).await;
        assert_eq!(status, 200, "{out}");
        out["methodResponses"].as_array().unwrap().clone()
    }

    /// One method call; returns `(response name, arguments)`.
    pub async fn call(&self, name: &str, mut args: Value) -> (String, Value) {
        if args.get("accountId").is_none() {
            args["accountId"] = json!(self.account_id);
        }
        let mut out = self.calls(json!([[name, args, "c0"]])).await;
        let first = out.remove(0);
        (first[0].as_str().unwrap().to_string(), first[1].clone())
    }

    /// Uploads `data`; returns status and body.
    pub async fn upload(&self, account_id: &str, data: Vec<u8>) -> (u16, Value) {
        let resp = self
            .post(&format!("/jmap/upload/{account_id}/"))
            .header("content-type", "application/octet-stream")
            .body(data)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// Downloads a blob; returns status and bytes.
    pub async fn download(&self, account_id: &str, blob_id: &str) -> (u16, Vec<u8>) {
        let resp = self
            .get(&format!(
                "/jmap/download/{account_id}/{blob_id}/msg.eml?accept=message/rfc822"
            ))
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.bytes().await.unwrap().to_vec())
    }
}
