//! Logging in over IMAP with Python's `imaplib`: the store's memory of
//! recent successful logins and the password-check slots (`store::logins`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use sealmail::store::AccountId;
use support::imap::ImapServer;

const ALICE: [&str; 2] = ["alice@example.org", "alice-pw"];

/// Python: `login_one(password)` logs in as `args[0]` on its own
/// connection and appends `(password, 'OK' or the server's NO text)` to
/// `answers`, in the order the answers came.
const LOGIN_ONE: &str = r#"
import threading, time
answers = []
def login_one(password):
    m = imaplib.IMAP4('127.0.0.1', port)
    try:
        m.login(args[0], password)
        answers.append((password, 'OK'))
        m.logout()
    except imaplib.IMAP4.error as e:
        answers.append((password, str(e)))
"#;

/// A server with alice whose failed logins wait `delay`.
fn server(delay: Duration) -> (ImapServer, AccountId) {
    let s = ImapServer::start_with(|c| c.failed_login_delay = delay);
    let id = s.account(ALICE[0], ALICE[1]);
    (s, id)
}

/// A repeated login skips the password hash (the store remembers a
/// recent success), but a changed password, a cleared one or a removed
/// account is refused at the very next LOGIN.
#[test]
fn a_remembered_login_ends_with_the_password_or_the_account() {
    let (s, id) = server(Duration::from_millis(10));
    let login = |password: &str| {
        let body = format!("{LOGIN_ONE}\nlogin_one(args[1])\nout['login'] = answers[0][1]\n");
        let out = s.python(&body, &[ALICE[0], password]);
        out["login"].as_str().unwrap().to_string()
    };
    assert_eq!(login("alice-pw"), "OK", "first login, now remembered");
    assert_eq!(login("alice-pw"), "OK", "the remembered one");
    assert!(login("wrong").contains("AUTHENTICATIONFAILED"));
    s.store.set_password(id, Some("new-pw")).unwrap();
    assert!(
        login("alice-pw").contains("AUTHENTICATIONFAILED"),
        "the old password is refused at once"
    );
    assert_eq!(login("new-pw"), "OK");
    assert_eq!(login("new-pw"), "OK");
    s.store.set_password(id, None).unwrap();
    assert!(login("new-pw").contains("AUTHENTICATIONFAILED"), "cleared");
    s.store.set_password(id, Some("new-pw")).unwrap();
    assert_eq!(login("new-pw"), "OK");
    s.store.remove_account(id).unwrap();
    assert!(login("new-pw").contains("AUTHENTICATIONFAILED"), "removed");
}

/// Logins arriving together wait for the password-check slots (one per
/// core) and all get their answer: twelve right ones and four wrong ones
/// at once, none refused for the wrong reason.
#[test]
fn logins_arriving_together_all_get_their_answer() {
    let (s, _) = server(Duration::from_millis(10));
    let body = format!(
        "{LOGIN_ONE}{}",
        r#"
threads = [threading.Thread(target=login_one, args=(p,)) for p in [args[1]] * 12 + ['wrong'] * 4]
for t in threads: t.start()
for t in threads: t.join()
out['right'] = sorted(r for p, r in answers if p == args[1])
out['wrong'] = sorted(r for p, r in answers if p != args[1])
"#
    );
    let out = s.python(&body, &ALICE);
    assert_eq!(out["right"], serde_json::json!(vec!["OK"; 12]), "{out}");
    let wrong = out["wrong"].as_array().unwrap();
    assert_eq!(wrong.len(), 4, "{out}");
    assert!(
        wrong
            .iter()
            .all(|r| r.as_str().unwrap().contains("AUTHENTICATIONFAILED")),
        "{out}"
    );
}

/// A wrong password's wait (the throttle's delay) does not hold a
/// password-check slot: while two wrong logins from one address (as many
/// as a 2-core server has slots) wait out their delays (3 s, then 6 s), a
/// right login is answered first.
#[test]
fn a_failed_login_waits_without_holding_a_check_slot() {
    let (s, _) = server(Duration::from_secs(3));
    let body = format!(
        "{LOGIN_ONE}{}",
        r#"
threads = [threading.Thread(target=login_one, args=('wrong',)) for _ in range(2)]
for t in threads: t.start()
time.sleep(0.5)
right = threading.Thread(target=login_one, args=(args[1],))
right.start()
for t in threads + [right]: t.join()
out['order'] = ['right' if p == args[1] else 'wrong' for p, _ in answers]
"#
    );
    let out = s.python(&body, &ALICE);
    assert_eq!(out["order"][0], "right", "{out}");
    assert_eq!(out["order"].as_array().unwrap().len(), 3, "{out}");
}
