//! The parent process of the fan-out bench: runs a child per list size
//! and run, the Sympa way beside it, and prints the comparison.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use super::{contains, cpu_secs, member, message, openssl_decrypt, Pki, BODY, MARKER};

/// One child's figures, parsed from its `FANOUT` line.
#[derive(Debug, Default)]
struct Figures {
    members: usize,
    copies: usize,
    secs: f64,
    setup_secs: f64,
    hwm_setup_kib: u64,
    rss_before_kib: u64,
    rss_after_kib: u64,
    hwm_deliver_kib: Option<u64>,
    /// CPU seconds (all threads, user + system) the deliver took.
    cpu_secs: f64,
    parts: String,
}

/// What the Sympa way cost.
#[derive(Debug)]
struct SympaWay {
    n: usize,
    seq: Duration,
    par: Duration,
    /// CPU seconds of the `openssl` processes, sequential phase.
    seq_cpu_secs: f64,
}

pub(crate) fn run() {
    let sizes: Vec<usize> = std::env::var("SEALMAIL_BENCH_MEMBERS")
        .unwrap_or_else(|_| "1000,10000".into())
        .split(',')
        .map(|s| s.trim().parse().expect("SEALMAIL_BENCH_MEMBERS: numbers"))
        .collect();
    let sympa_n: usize = std::env::var("SEALMAIL_BENCH_SYMPA")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    // why several runs: on a shared 2-core machine one run moves by tens of
    // per cent; the median run is reported, with the spread.
    let runs: usize = std::env::var("SEALMAIL_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5)
        .max(1);
    println!(
        "fanout: {BODY}-byte body, sizes {sizes:?}, {runs} runs each, Sympa way on {sympa_n} recipients"
    );
    let me = std::env::current_exe().unwrap();
    let mut ours = Vec::new();
    let mut spread = String::new();
    for &n in &sizes {
        let mut all: Vec<Figures> = (0..runs)
            .map(|_| {
                let out = Command::new(&me)
                    .args(["--child", &n.to_string()])
                    .stderr(std::process::Stdio::inherit())
                    .output()
                    .unwrap();
                let text = String::from_utf8_lossy(&out.stdout);
                assert!(out.status.success(), "child for {n} members failed");
                parse_figures(&text)
            })
            .collect();
        all.sort_by(|a, b| a.secs.total_cmp(&b.secs));
        let rates: Vec<String> = all
            .iter()
            .map(|f| format!("{:.0}", f.copies as f64 / f.secs))
            .collect();
        writeln!(
            spread,
            "copies/s at {n} members, fastest to slowest run: {}",
            rates.join(", ")
        )
        .unwrap();
        ours.push(all.swap_remove(runs / 2));
    }
    let mut sympa: Vec<SympaWay> = (0..3).map(|_| sympa_way(sympa_n)).collect();
    sympa.sort_by_key(|s| s.seq);
    let seq: Vec<String> = sympa
        .iter()
        .map(|s| format!("{:.0}", s.n as f64 / s.seq.as_secs_f64()))
        .collect();
    writeln!(
        spread,
        "Sympa way sequential copies/s, 3 runs: {} (median used)",
        seq.join(", ")
    )
    .unwrap();
    print!("{spread}");
    report(&ours, &sympa.swap_remove(1));
}

fn parse_figures(text: &str) -> Figures {
    let line = text
        .lines()
        .find(|l| l.starts_with("FANOUT "))
        .expect("child printed no FANOUT line");
    let mut f = Figures::default();
    for kv in line.split_whitespace().skip(1) {
        let (k, v) = kv.split_once('=').unwrap();
        match k {
            "members" => f.members = v.parse().unwrap(),
            "copies" => f.copies = v.parse().unwrap(),
            "secs" => f.secs = v.parse().unwrap(),
            "setup_secs" => f.setup_secs = v.parse().unwrap(),
            "hwm_setup_kib" => f.hwm_setup_kib = v.parse().unwrap(),
            "rss_before_kib" => f.rss_before_kib = v.parse().unwrap(),
            "rss_after_kib" => f.rss_after_kib = v.parse().unwrap(),
            "hwm_deliver_kib" => f.hwm_deliver_kib = v.parse().ok(),
            "cpu_secs" => f.cpu_secs = v.parse().unwrap(),
            _ => {}
        }
    }
    f.parts = text
        .lines()
        .filter(|l| l.starts_with("  part "))
        .collect::<Vec<_>>()
        .join("\n");
    f
}

/// `openssl cms -encrypt -aes256 -in msg -out out cert`, once per
/// recipient: sequentially, then two at a time.
fn sympa_way(n: usize) -> SympaWay {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new();
    let msg = dir.path().join("msg.eml");
    std::fs::write(&msg, message()).unwrap();
    let certs: Vec<PathBuf> = (0..n)
        .map(|i| {
            let (cert, _) = pki.issue(i, &member(i));
            let path = dir.path().join(format!("r{i}.crt"));
            std::fs::write(&path, cert.to_pem().unwrap()).unwrap();
            path
        })
        .collect();
    let encrypt = |i: usize| {
        let out = dir.path().join(format!("r{i}.p7m"));
        let status = Command::new("openssl")
            .args(["cms", "-encrypt", "-aes256", "-in"])
            .arg(&msg)
            .arg("-out")
            .arg(&out)
            .arg(&certs[i])
            .status()
            .unwrap();
        assert!(status.success(), "openssl cms -encrypt failed");
    };
    let cpu = cpu_secs().1;
    let start = Instant::now();
    (0..n).for_each(encrypt);
    let seq = start.elapsed();
    let seq_cpu_secs = cpu_secs().1 - cpu;
    let start = Instant::now();
    std::thread::scope(|s| {
        for t in 0..2 {
            let encrypt = &encrypt;
            s.spawn(move || (t..n).step_by(2).for_each(encrypt));
        }
    });
    let par = start.elapsed();
    // untimed: one output really is for its recipient.
    let (_, key_idx) = pki.issue(1, &member(1));
    let plain = openssl_decrypt(
        &std::fs::read(dir.path().join("r1.p7m")).unwrap(),
        &std::fs::read(&certs[1]).unwrap(),
        &pki.keys[key_idx],
        dir.path(),
    )
    .expect("Sympa-way output does not decrypt");
    assert!(contains(&plain, MARKER.as_bytes()));
    SympaWay {
        n,
        seq,
        par,
        seq_cpu_secs,
    }
}

fn report(ours: &[Figures], sympa: &SympaWay) {
    let seq_rate = sympa.n as f64 / sympa.seq.as_secs_f64();
    let par_rate = sympa.n as f64 / sympa.par.as_secs_f64();
    let sympa_cpu_ms = sympa.seq_cpu_secs * 1e3 / sympa.n as f64;
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let mut s = String::new();
    writeln!(s, "\n| members | deliver | copies/s | CPU per copy | peak RSS during deliver | RSS before → after deliver | peak RSS incl. set-up | set-up |").unwrap();
    writeln!(s, "|---|---|---|---|---|---|---|---|").unwrap();
    for f in ours {
        let hwm = f
            .hwm_deliver_kib
            .map_or("n/a".into(), |k| format!("{} MiB", k / 1024));
        writeln!(
            s,
            "| {} | {:.2} s | {:.0} | {:.2} ms | {} | {} → {} MiB (+{}) | {} MiB | {:.0} s |",
            f.members,
            f.secs,
            f.copies as f64 / f.secs,
            f.cpu_secs * 1e3 / f.copies as f64,
            hwm,
            f.rss_before_kib / 1024,
            f.rss_after_kib / 1024,
            f.rss_after_kib.saturating_sub(f.rss_before_kib) / 1024,
            f.hwm_setup_kib.max(f.hwm_deliver_kib.unwrap_or(0)) / 1024,
            f.setup_secs,
        )
        .unwrap();
    }
    writeln!(
        s,
        "\nSympa way ({} × `openssl cms -encrypt -aes256`): sequential {:.2} s = {seq_rate:.0} copies/s ({sympa_cpu_ms:.2} ms CPU per copy); 2 in parallel {:.2} s = {par_rate:.0} copies/s",
        sympa.n,
        sympa.seq.as_secs_f64(),
        sympa.par.as_secs_f64()
    )
    .unwrap();
    for f in ours {
        let rate = f.copies as f64 / f.secs;
        let cpu_ms = f.cpu_secs * 1e3 / f.copies as f64;
        writeln!(
            s,
            "ours/sympa at {} members: {:.1}× sequential, {:.1}× 2-parallel, {:.1}× by CPU per copy; CPU-bound ceiling on {cores} cores: {:.0} copies/s",
            f.members,
            rate / seq_rate,
            rate / par_rate,
            sympa_cpu_ms / cpu_ms,
            cores as f64 * 1e3 / cpu_ms,
        )
        .unwrap();
    }
    for f in ours {
        writeln!(
            s,
            "\nsingle-thread parts at {} members (per copy):\n{}",
            f.members, f.parts
        )
        .unwrap();
    }
    print!("{s}");
}
