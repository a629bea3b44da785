//! `dist/sealmail.service`: systemd itself (`systemd-analyze verify`)
//! accepts every line of it, and the hardening the README promises is in
//! it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::Path;
use std::process::Command;

use support::tools::require;

fn unit() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("dist/sealmail.service");
    std::fs::read_to_string(path).unwrap()
}

/// The values of `key=` in the unit, in order.
fn values<'a>(unit: &'a str, key: &str) -> Vec<&'a str> {
    unit.lines()
        .filter_map(|l| l.strip_prefix(key)?.strip_prefix('='))
        .collect()
}

#[test]
fn systemd_accepts_the_unit() {
    require("systemd-analyze");
    // why a copy: verify also checks that ExecStart's binary exists, and
    // the unit names where it is installed, not the build's target dir.
    let unit = unit().replace("/usr/local/bin/sealmail", env!("CARGO_BIN_EXE_sealmail"));
    assert!(unit.contains(env!("CARGO_BIN_EXE_sealmail")));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sealmail.service");
    std::fs::write(&path, unit).unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .unwrap();
    // why also no output: verify exits 0 after warnings such as an
    // unknown key or a value it cannot parse, which it then ignores.
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success() && said.trim().is_empty(), "{said}");
}

#[test]
fn the_unit_is_hardened() {
    let unit = unit();
    for (key, value) in [
        ("User", "sealmail"),
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("ReadWritePaths", "/var/lib/sealmail"),
        ("Environment", "SEALMAIL_DATA_DIR=/var/lib/sealmail"),
        ("CapabilityBoundingSet", ""),
        ("AmbientCapabilities", ""),
        ("LimitCORE", "0"),
        ("Restart", "on-failure"),
        (
            "ExecStart",
            "/usr/local/bin/sealmail serve --config /etc/sealmail/sealmail.toml",
        ),
    ] {
        assert_eq!(values(&unit, key), [value], "{key}");
    }
    let files: u64 = values(&unit, "LimitNOFILE")[0].parse().unwrap();
    // Above the reserve the store keeps (limits.reserved_files, 1,024)
    // with room for thousands of IMAP IDLE clients.
    assert!(files >= 16_384, "{files}");
    assert!(
        unit.contains("#   CapabilityBoundingSet=CAP_NET_BIND_SERVICE"),
        "the comment on binding low ports is gone"
    );
}
