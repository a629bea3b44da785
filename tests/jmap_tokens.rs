//! App tokens (ARCHITECTURE.md: `urn:sealmail:params:jmap:auth`,
//! `sealmail token add|list|remove`) against the real `sealmail serve`:
//! made by the CLI and by `AppToken/set`, accepted as
//! `Authorization: Bearer` for JMAP (RFC 6750 §2.1) and as the IMAP
//! password (Python `imaplib`, and a raw session for revocation), never
//! for another account, refused once removed, and never written to disk
//! in clear; on PostgreSQL, revoked on one node and refused on another.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::io::{BufRead as _, BufReader, Write as _};
use std::net::TcpStream;
use std::time::Duration;

use serde_json::{json, Value};

use support::postgres::test_db;
use support::server::Server;
use support::tools::{found_in_files, python};

const AUTH: &str = "urn:sealmail:params:jmap:auth";
const A: &str = "alice@example.org";
const B: &str = "bob@example.org";

fn server() -> Server {
    let s = Server::start();
    s.account_with_password(A, "alice-pw");
    s.account_with_password(B, "bob-pw");
    s
}

/// `sealmail token add EMAIL --name NAME --json`: (id, secret).
fn cli_token(s: &Server, email: &str, name: &str) -> (String, String) {
    let out: Value =
        serde_json::from_str(&s.ok(&["token", "add", email, "--name", name, "--json"])).unwrap();
    (
        out["id"].as_str().unwrap().to_string(),
        out["secret"].as_str().unwrap().to_string(),
    )
}

/// How a request authenticates.
enum Auth<'a> {
    Bearer(&'a str),
    Basic(&'a str, &'a str),
}

/// `method url` on the server's JMAP listener: status and body.
fn http(s: &Server, auth: &Auth<'_>, path: &str, body: Option<&Value>) -> (u16, Value) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client = reqwest::Client::new();
        let url = format!("http://127.0.0.1:{}{path}", s.jmap_port);
        let request = match body {
            Some(b) => client.post(url).json(b),
            None => client.get(url),
        };
        let request = match auth {
            Auth::Bearer(secret) => request.bearer_auth(secret),
            Auth::Basic(user, password) => request.basic_auth(user, Some(password)),
        };
        let resp = request.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    })
}

fn session(s: &Server, auth: &Auth<'_>) -> (u16, Value) {
    http(s, auth, "/.well-known/jmap", None)
}

/// One method call with the auth capability; the first response.
fn call(s: &Server, auth: &Auth<'_>, method: &str, args: Value) -> (u16, Value) {
    let body = json!({
        "using": ["urn:ietf:params:jmap:core", "urn:ietf:params:jmap:mail", AUTH],
        "methodCalls": [[method, args, "c0"]],
    });
    let (status, out) = http(s, auth, "/jmap/api", Some(&body));
    (status, out["methodResponses"][0].clone())
}

fn account_id(s: &Server, auth: &Auth<'_>) -> String {
    let (status, sess) = session(s, auth);
    assert_eq!(status, 200, "{sess}");
    sess["primaryAccounts"]["urn:ietf:params:jmap:mail"]
        .as_str()
        .unwrap()
        .to_string()
}

const IMAP_LOGIN: &str = r#"
import imaplib, sys
m = imaplib.IMAP4("127.0.0.1", int(sys.argv[1]))
try:
    m.login(sys.argv[2], sys.argv[3])
    typ, data = m.select("INBOX")
    print("OK", typ)
    m.logout()
except imaplib.IMAP4.error as e:
    print("NO", e)
"#;

const IMAP_PLAIN: &str = r#"
import imaplib, sys
m = imaplib.IMAP4("127.0.0.1", int(sys.argv[1]))
try:
    m.authenticate("PLAIN", lambda _: ("\0%s\0%s" % (sys.argv[2], sys.argv[3])).encode())
    print("OK")
    m.logout()
except imaplib.IMAP4.error as e:
    print("NO", e)
"#;

/// AUTHENTICATE PLAIN (RFC 4616) as `user` with `password`.
fn imap_plain(s: &Server, user: &str, password: &str) -> String {
    python(IMAP_PLAIN, &[&s.imap_port.to_string(), user, password])
        .trim()
        .to_string()
}

fn imap_login(s: &Server, user: &str, password: &str) -> String {
    python(IMAP_LOGIN, &[&s.imap_port.to_string(), user, password])
        .trim()
        .to_string()
}

#[test]
fn a_cli_token_works_as_bearer_and_as_imap_password() {
    let s = server();
    let (id, secret) = cli_token(&s, A, "phone");
    assert!(secret.starts_with("smt_"), "{secret}");
    let bearer = Auth::Bearer(&secret);
    let (status, sess) = session(&s, &bearer);
    assert_eq!(status, 200, "{sess}");
    assert_eq!(sess["username"], A);
    assert!(sess["capabilities"][AUTH].is_object(), "{sess}");
    let account = account_id(&s, &bearer);
    let (status, reply) = call(&s, &bearer, "Mailbox/get", json!({"accountId": account}));
    assert_eq!(status, 200);
    assert_eq!(reply[0], "Mailbox/get", "{reply}");
    // Clients that speak only Basic give the secret as the password.
    assert_eq!(session(&s, &Auth::Basic(A, &secret)).0, 200);
    assert!(imap_login(&s, A, &secret).starts_with("OK"));
    assert!(imap_plain(&s, A, &secret).starts_with("OK"));
    // Listed without its secret, with its last use.
    let list = s.ok(&["token", "list", A, "--json"]);
    assert!(!list.contains(&secret), "{list}");
    let tokens: Value = serde_json::from_str(&list).unwrap();
    assert_eq!(tokens[0]["id"], id.as_str());
    assert_eq!(tokens[0]["name"], "phone");
    assert!(tokens[0]["lastUsed"].is_string(), "{tokens}");
}

#[test]
fn wrong_and_removed_tokens_are_refused() {
    let s = server();
    let (id, secret) = cli_token(&s, A, "laptop");
    let mut wrong = secret.clone();
    wrong.pop();
    wrong.push(if secret.ends_with('A') { 'B' } else { 'A' });
    assert_eq!(session(&s, &Auth::Bearer(&wrong)).0, 401);
    assert_eq!(session(&s, &Auth::Bearer("smt_nonsense")).0, 401);
    assert!(imap_login(&s, A, &wrong).starts_with("NO"));
    assert_eq!(session(&s, &Auth::Bearer(&secret)).0, 200);
    s.ok(&["token", "remove", A, &id]);
    assert_eq!(session(&s, &Auth::Bearer(&secret)).0, 401);
    assert!(imap_login(&s, A, &secret).starts_with("NO"));
    let again = s.cli(&["token", "remove", A, &id], b"");
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("no app token"));
}

#[test]
fn a_token_never_opens_another_account() {
    let s = server();
    let (_, secret) = cli_token(&s, A, "a's token");
    // JMAP: Basic with B's address, and B's account id under Bearer.
    assert_eq!(session(&s, &Auth::Basic(B, &secret)).0, 401);
    let b_account = account_id(&s, &Auth::Basic(B, "bob-pw"));
    let (_, reply) = call(
        &s,
        &Auth::Bearer(&secret),
        "Mailbox/get",
        json!({"accountId": b_account}),
    );
    assert_eq!(reply[1]["type"], "accountNotFound", "{reply}");
    let (_, reply) = call(
        &s,
        &Auth::Bearer(&secret),
        "AppToken/get",
        json!({"accountId": b_account}),
    );
    assert_eq!(reply[1]["type"], "accountNotFound", "{reply}");
    // IMAP: A's token as B's password.
    assert!(imap_login(&s, B, &secret).starts_with("NO"));
    assert!(imap_plain(&s, B, &secret).starts_with("NO"));
    assert!(imap_login(&s, B, "bob-pw").starts_with("OK"));
}

#[test]
fn jmap_creates_lists_and_destroys_tokens() {
    let s = server();
    let basic = Auth::Basic(A, "alice-pw");
    let account = account_id(&s, &basic);
    let (_, reply) = call(
        &s,
        &basic,
        "AppToken/set",
        json!({"accountId": account, "create": {"t1": {"name": "jmapc script"}}}),
    );
    let created = &reply[1]["created"]["t1"];
    let secret = created["secret"].as_str().unwrap().to_string();
    let id = created["id"].as_str().unwrap().to_string();
    assert!(secret.starts_with("smt_"), "{reply}");
    assert_eq!(created["name"], "jmapc script");
    assert!(
        created["created"].as_str().unwrap().ends_with('Z'),
        "{reply}"
    );
    let bearer = Auth::Bearer(&secret);
    let (_, got) = call(&s, &bearer, "AppToken/get", json!({"accountId": account}));
    let list = got[1]["list"].as_array().unwrap();
    assert_eq!(list.len(), 1, "{got}");
    assert_eq!(list[0]["id"], id.as_str());
    assert!(list[0].get("secret").is_none(), "{got}");
    assert!(!got.to_string().contains(&secret));
    let (_, reply) = call(
        &s,
        &basic,
        "AppToken/set",
        json!({"accountId": account, "create": {"bad": {"name": "x", "secret": "mine"}}}),
    );
    assert_eq!(reply[1]["notCreated"]["bad"]["type"], "invalidProperties");
    let (_, reply) = call(
        &s,
        &bearer,
        "AppToken/set",
        json!({"accountId": account, "destroy": [id]}),
    );
    assert_eq!(reply[1]["destroyed"][0], id.as_str(), "{reply}");
    assert_eq!(session(&s, &bearer).0, 401, "destroyed, refused at once");
}

/// Reads one IMAP response line for `tag` (skipping untagged ones).
fn tagged(reader: &mut BufReader<TcpStream>, tag: &str) -> String {
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        assert!(!line.is_empty(), "connection closed waiting for {tag}");
        if line.starts_with(&format!("{tag} ")) {
            return line;
        }
    }
}

#[test]
fn revoking_a_token_ends_an_open_imap_session() {
    let s = server();
    let (id, secret) = cli_token(&s, A, "mutt");
    let stream = TcpStream::connect(("127.0.0.1", s.imap_port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    let mut greeting = String::new();
    reader.read_line(&mut greeting).unwrap();
    write!(writer, "a1 LOGIN \"{A}\" \"{secret}\"\r\n").unwrap();
    assert!(tagged(&mut reader, "a1").starts_with("a1 OK"));
    write!(writer, "a2 SELECT INBOX\r\n").unwrap();
    assert!(tagged(&mut reader, "a2").starts_with("a2 OK"));
    s.ok(&["token", "remove", A, &id]);
    write!(writer, "a3 STATUS INBOX (MESSAGES)\r\n").unwrap();
    let refused = tagged(&mut reader, "a3");
    assert!(refused.contains("revoked"), "{refused}");
    write!(writer, "a4 SELECT INBOX\r\n").unwrap();
    let after = tagged(&mut reader, "a4");
    assert!(!after.starts_with("a4 OK"), "{after}");
}

#[test]
fn the_secret_is_never_stored_or_logged_in_clear() {
    let s = server();
    let (_, secret) = cli_token(&s, A, "scan me");
    assert_eq!(session(&s, &Auth::Bearer(&secret)).0, 200);
    assert!(imap_login(&s, A, &secret).starts_with("OK"));
    // A wrong one is logged as a failure, without the secret either.
    let mut wrong = secret.clone();
    wrong.push('x');
    assert_eq!(session(&s, &Auth::Bearer(&wrong)).0, 401);
    let body = secret.trim_start_matches("smt_");
    assert!(
        found_in_files(&s.data_dir, body.as_bytes()).is_empty(),
        "secret found in the data directory"
    );
    assert!(
        found_in_files(s.scratch.path(), body.as_bytes()).is_empty(),
        "secret found in the server's log or temporary files"
    );
}

#[test]
fn on_postgres_a_token_made_on_one_node_works_and_dies_on_another() {
    let db = test_db();
    let env = [
        ("SEALMAIL_STORE_ENGINE", "postgres"),
        ("SEALMAIL_STORE_URL", db.url.as_str()),
        ("SEALMAIL_STORE_POOL_SIZE", "4"),
    ];
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = Server::start_with_env(dir_a.path(), &env);
    a.account_with_password(A, "alice-pw");
    let b = Server::start_with_env(dir_b.path(), &env);
    let (id, secret) = cli_token(&a, A, "both nodes");
    assert_eq!(session(&b, &Auth::Bearer(&secret)).0, 200);
    assert!(imap_login(&b, A, &secret).starts_with("OK"));
    b.ok(&["token", "remove", A, &id]);
    assert_eq!(session(&a, &Auth::Bearer(&secret)).0, 401);
    assert!(imap_login(&a, A, &secret).starts_with("NO"));
}
