//! `sealmail cert inspect FILE`: what the server would record for a
//! certificate file and whether it would be accepted for encryption.
//!
//! Offline: the account's existing certificates are unknown here, so that
//! rule is reported as not checked; the address rule is checked only
//! against the `--email` addresses given. The overall verdict comes from
//! [`certs::recipients`], the same function `cert add` and `encrypt` use,
//! so inspect cannot disagree with them.

use std::io::Write;
use std::process::ExitCode;
use std::time::SystemTime;

use anyhow::Context;
use serde::Serialize;

use super::{InspectArgs, EXIT_USER};
use crate::certs::{self, CertInfo, CertReport, Policy, Role, Rule, RuleStatus, UtcDate};
use crate::text::{escape, escape_json};

/// Why the duplicate rule is not checked offline.
const NOT_ON_ACCOUNT_OFFLINE: &str =
    "the account's certificates are known only to the server; `cert add` checks it";

/// Runs `cert inspect`: 0 when the file would be accepted, [`EXIT_USER`]
/// when it would not (reason on stderr), `Err` (exit 2) on I/O trouble.
pub(super) fn run(args: &InspectArgs) -> anyhow::Result<ExitCode> {
    let path = args.file.display();
    let bytes = std::fs::read(&args.file)
        .with_context(|| format!("cannot read {path}; check the path and its permissions"))?;
    let parsed = match certs::parse(&bytes) {
        Ok(parsed) => parsed,
        Err(err) => {
            eprintln!("sealmail: {}", escape(&format!("{path}: {err}")));
            return Ok(ExitCode::from(EXIT_USER));
        }
    };
    let policy = Policy {
        now: SystemTime::now(),
        addresses: (!args.emails.is_empty()).then_some(args.emails.as_slice()),
        existing: &[],
    };
    let mut reports = certs::assess(&parsed, &policy);
    for report in &mut reports {
        mark_offline(report);
    }
    let verdict = certs::recipients(&bytes, &policy).map_err(|e| e.to_string());
    let mut out = std::io::stdout().lock();
    if args.json {
        let doc = JsonDoc::new(&args.file.to_string_lossy(), &reports, &verdict);
        let text = serde_json::to_string_pretty(&doc).context("writing JSON")?;
        // why: a certificate's subject may hold bidi or C1 controls that
        // serde leaves raw; escape_json keeps the same JSON value.
        writeln!(out, "{}", escape_json(&text)).context("writing to standard output")?;
    } else {
        write_text(&mut out, &reports, &verdict).context("writing to standard output")?;
    }
    out.flush().context("writing to standard output")?;
    match verdict {
        Ok(_) => Ok(ExitCode::SUCCESS),
        Err(reason) => {
            eprintln!("sealmail: {}", escape(&format!("{path}: {reason}")));
            Ok(ExitCode::from(EXIT_USER))
        }
    }
}

/// Why the address rule is not checked without `--email`.
const NO_EMAIL_GIVEN: &str =
    "no --email given; add --email ADDRESS (repeat for aliases) to check it";

/// Rewords the rules an offline inspect cannot check or checks only on
/// request.
fn mark_offline(report: &mut CertReport<'_>) {
    for outcome in &mut report.outcomes {
        match (outcome.rule, &outcome.status) {
            (Rule::NotOnAccount, RuleStatus::Pass) => {
                outcome.status = RuleStatus::NotChecked(NOT_ON_ACCOUNT_OFFLINE);
            }
            (Rule::EmailMatchesAccount, RuleStatus::NotChecked(_)) => {
                outcome.status = RuleStatus::NotChecked(NO_EMAIL_GIVEN);
            }
            _ => {}
        }
    }
}

/// `(status word, message)` of one outcome, shared by text and JSON.
fn status_of(status: &RuleStatus) -> (&'static str, Option<String>) {
    match status {
        RuleStatus::Pass => ("pass", None),
        RuleStatus::Fail(v) => ("fail", Some(v.to_string())),
        RuleStatus::NotChecked(why) => ("not-checked", Some((*why).to_string())),
        // why: RuleStatus is ours; a new variant shows up as not checked
        // until this match learns it.
        #[allow(unreachable_patterns)]
        _ => ("not-checked", None),
    }
}

fn cert_verdict(report: &CertReport<'_>) -> String {
    match (report.role, report.violation()) {
        (Role::SkippedCa, _) => {
            "skipped: a CA certificate in a bundle is not used as a recipient".into()
        }
        (_, Some(v)) => format!("rejected: {v}"),
        (_, None) => "accepted for encryption".into(),
    }
}

fn write_text(
    out: &mut impl Write,
    reports: &[CertReport<'_>],
    verdict: &Result<Vec<certs::ParsedCert>, String>,
) -> std::io::Result<()> {
    let total = reports.len();
    for (i, report) in reports.iter().enumerate() {
        writeln!(out, "Certificate {} of {total}", i + 1)?;
        write_info(out, &report.cert.info(), report.cert.is_ca())?;
        writeln!(out, "  Rules:")?;
        for outcome in &report.outcomes {
            let (word, message) = status_of(&outcome.status);
            match message {
                Some(m) => writeln!(out, "    {word:<11} {}: {}", outcome.rule, escape(&m))?,
                None => writeln!(out, "    {word:<11} {}", outcome.rule)?,
            }
        }
        writeln!(out, "  Verdict:      {}", escape(&cert_verdict(report)))?;
        writeln!(out)?;
    }
    match verdict {
        Ok(accepted) => writeln!(
            out,
            "Verdict: would be accepted for encryption ({} recipient certificate{}; CA certificates in a bundle are skipped as recipients)",
            accepted.len(),
            if accepted.len() == 1 { "" } else { "s" }
        ),
        Err(reason) => writeln!(out, "Verdict: would be rejected: {}", escape(reason)),
    }
}

fn write_info(out: &mut impl Write, info: &CertInfo, is_ca: bool) -> std::io::Result<()> {
    let emails = if info.email_addresses.is_empty() {
        "(none)".to_string()
    } else {
        info.email_addresses.join(", ")
    };
    let key = match info.key_size {
        Some(bits) => format!("{} {bits} bits", info.key_algorithm),
        None => info.key_algorithm.clone(),
    };
    writeln!(out, "  Subject:      {}", escape(&info.subject))?;
    writeln!(out, "  Issuer:       {}", escape(&info.issuer))?;
    writeln!(out, "  Serial:       {}", escape(&info.serial_number))?;
    writeln!(out, "  E-mail:       {}", escape(&emails))?;
    writeln!(
        out,
        "  Valid:        {} to {}",
        UtcDate(info.not_before),
        UtcDate(info.not_after)
    )?;
    writeln!(out, "  Key:          {key}")?;
    writeln!(out, "  Fingerprint:  {}", info.fingerprint)?;
    let kind = if is_ca { "CA" } else { "end-entity" };
    writeln!(out, "  Type:         {kind}")
}

/// The `--json` document.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct JsonDoc {
    file: String,
    accepted: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    certificates: Vec<JsonCert>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct JsonCert {
    #[serde(flatten)]
    info: CertInfo,
    is_ca: bool,
    /// `recipient` or `skipped-ca`.
    role: &'static str,
    rules: Vec<JsonRule>,
    accepted: bool,
}

#[derive(Serialize)]
struct JsonRule {
    rule: &'static str,
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<String>,
}

impl JsonDoc {
    fn new(
        file: &str,
        reports: &[CertReport<'_>],
        verdict: &Result<Vec<certs::ParsedCert>, String>,
    ) -> Self {
        let certificates = reports
            .iter()
            .map(|r| JsonCert {
                info: r.cert.info(),
                is_ca: r.cert.is_ca(),
                role: match r.role {
                    Role::SkippedCa => "skipped-ca",
                    _ => "recipient",
                },
                rules: r
                    .outcomes
                    .iter()
                    .map(|o| {
                        let (status, message) = status_of(&o.status);
                        JsonRule {
                            rule: o.rule.name(),
                            status,
                            message,
                        }
                    })
                    .collect(),
                accepted: r.accepted(),
            })
            .collect();
        Self {
            file: file.to_string(),
            accepted: verdict.is_ok(),
            reason: verdict.as_ref().err().cloned(),
            certificates,
        }
    }
}
