//! The Prometheus text exposition format, version 0.0.4 (the format every
//! Prometheus server since 2.0 scrapes; "Exposition formats" in the
//! Prometheus documentation):
//!
//! ```text
//! metric_family = *comment *sample
//! comment       = "# HELP " name " " escaped-help LF / "# TYPE " name " " type LF
//! sample        = name [ "{" label *( "," label ) "}" ] " " value LF
//! label         = label-name "=" DQUOTE escaped-label-value DQUOTE
//! ```
//!
//! In help text `\` and line feed are escaped (`\\`, `\n`); in label
//! values `"` as well (`\"`). A histogram is its cumulative
//! `_bucket{le=".."}` series, ending with `le="+Inf"` (equal to
//! `_count`), then `_sum` and `_count`.
//!
//! Names and label names are ours (constants), never a peer's; they are
//! still checked here in debug builds so that a typo cannot produce a
//! scrape that Prometheus rejects whole.

use std::fmt::{Display, Write as _};

/// What a family is, for its `# TYPE` line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Only goes up (name ends in `_total`).
    Counter,
    /// Goes up and down.
    Gauge,
    /// Observations in buckets, with their sum and count.
    Histogram,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// One label of a sample: name and value.
pub(crate) type Label<'a> = (&'static str, &'a str);

/// A scrape being written.
#[derive(Debug, Default)]
pub(crate) struct Exposition {
    out: String,
}

impl Exposition {
    /// The `# HELP` and `# TYPE` lines that start a family.
    pub(crate) fn family(&mut self, name: &str, help: &str, kind: Kind) {
        debug_assert!(is_name(name), "bad metric name {name:?}");
        debug_assert!(
            kind != Kind::Counter || name.ends_with("_total"),
            "counter {name} must end in _total"
        );
        let _ = write!(self.out, "# HELP {name} ");
        escape(&mut self.out, help, false);
        let _ = writeln!(self.out, "\n# TYPE {name} {}", kind.as_str());
    }

    /// One sample line.
    pub(crate) fn sample(&mut self, name: &str, labels: &[Label<'_>], value: impl Display) {
        self.out.push_str(name);
        self.labels(labels, None);
        let _ = writeln!(self.out, " {value}");
    }

    /// The sample lines of one histogram: `counts` are per bucket, not
    /// cumulative, one for each of `bounds` (upper bounds, ascending) and
    /// a last one for the observations above every bound.
    pub(crate) fn histogram(
        &mut self,
        name: &str,
        labels: &[Label<'_>],
        bounds: &[f64],
        counts: &[u64],
        sum: f64,
    ) {
        debug_assert_eq!(
            counts.len(),
            bounds.len() + 1,
            "{name}: one count per bucket"
        );
        let mut cumulative: u64 = 0;
        let bucket = format!("{name}_bucket");
        for (i, count) in counts.iter().enumerate() {
            cumulative = cumulative.saturating_add(*count);
            let le = bounds
                .get(i)
                .map_or_else(|| "+Inf".to_string(), f64::to_string);
            self.out.push_str(&bucket);
            self.labels(labels, Some(&le));
            let _ = writeln!(self.out, " {cumulative}");
        }
        self.sample(&format!("{name}_sum"), labels, sum);
        self.sample(&format!("{name}_count"), labels, cumulative);
    }

    /// The text of the scrape.
    pub(crate) fn finish(self) -> String {
        self.out
    }

    fn labels(&mut self, labels: &[Label<'_>], le: Option<&str>) {
        if labels.is_empty() && le.is_none() {
            return;
        }
        self.out.push('{');
        let le = le.map(|v| ("le", v));
        for (i, (name, value)) in labels.iter().copied().chain(le).enumerate() {
            debug_assert!(is_name(name) && !name.contains(':'), "bad label {name:?}");
            if i > 0 {
                self.out.push(',');
            }
            self.out.push_str(name);
            self.out.push_str("=\"");
            escape(&mut self.out, value, true);
            self.out.push('"');
        }
        self.out.push('}');
    }
}

/// Appends `text` escaped for help text, or for a label value when
/// `quoted` (which also escapes `"`).
fn escape(out: &mut String, text: &str, quoted: bool) {
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' if quoted => out.push_str("\\\""),
            c => out.push(c),
        }
    }
}

/// `[a-zA-Z_:][a-zA-Z0-9_:]*`, the metric name grammar.
fn is_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_counter_family_reads_as_prometheus_writes_it() {
        let mut e = Exposition::default();
        e.family("x_requests_total", "Requests.", Kind::Counter);
        e.sample("x_requests_total", &[("code", "2xx")], 3_u64);
        e.sample(
            "x_requests_total",
            &[("code", "4xx"), ("proto", "imap")],
            0_u64,
        );
        assert_eq!(
            e.finish(),
            "# HELP x_requests_total Requests.\n\
             # TYPE x_requests_total counter\n\
             x_requests_total{code=\"2xx\"} 3\n\
             x_requests_total{code=\"4xx\",proto=\"imap\"} 0\n"
        );
    }

    #[test]
    fn a_sample_without_labels_has_no_braces() {
        let mut e = Exposition::default();
        e.family("x_open", "Open now.", Kind::Gauge);
        e.sample("x_open", &[], -2_i64);
        assert!(e.finish().ends_with("# TYPE x_open gauge\nx_open -2\n"));
    }

    #[test]
    fn label_values_and_help_are_escaped() {
        let mut e = Exposition::default();
        e.family(
            "x_total",
            "back\\slash and\nnew line \"quoted\"",
            Kind::Counter,
        );
        e.sample("x_total", &[("v", "a\"b\\c\nd")], 1_u64);
        let text = e.finish();
        // Help escapes backslash and new line, but leaves quotes alone.
        assert!(
            text.starts_with("# HELP x_total back\\\\slash and\\nnew line \"quoted\"\n"),
            "{text}"
        );
        assert!(
            text.contains("x_total{v=\"a\\\"b\\\\c\\nd\"} 1\n"),
            "{text}"
        );
        // Every sample stays on one line.
        assert_eq!(text.lines().count(), 3, "{text}");
    }

    #[test]
    fn histogram_buckets_are_cumulative_and_end_in_inf() {
        let mut e = Exposition::default();
        e.family("x_seconds", "Latency.", Kind::Histogram);
        e.histogram(
            "x_seconds",
            &[("cmd", "FETCH")],
            &[0.005, 0.1, 2.5],
            &[2, 0, 5, 1],
            3.25,
        );
        assert_eq!(
            e.finish(),
            "# HELP x_seconds Latency.\n\
             # TYPE x_seconds histogram\n\
             x_seconds_bucket{cmd=\"FETCH\",le=\"0.005\"} 2\n\
             x_seconds_bucket{cmd=\"FETCH\",le=\"0.1\"} 2\n\
             x_seconds_bucket{cmd=\"FETCH\",le=\"2.5\"} 7\n\
             x_seconds_bucket{cmd=\"FETCH\",le=\"+Inf\"} 8\n\
             x_seconds_sum{cmd=\"FETCH\"} 3.25\n\
             x_seconds_count{cmd=\"FETCH\"} 8\n"
        );
    }

    #[test]
    fn a_histogram_without_labels_has_only_le() {
        let mut e = Exposition::default();
        e.histogram("x_seconds", &[], &[1.0], &[0, 0], 0.0);
        assert_eq!(
            e.finish(),
            "x_seconds_bucket{le=\"1\"} 0\n\
             x_seconds_bucket{le=\"+Inf\"} 0\n\
             x_seconds_sum 0\n\
             x_seconds_count 0\n"
        );
    }

    #[test]
    fn names_follow_the_grammar() {
        assert!(is_name("sealmail_lmtp_deliveries_total"));
        assert!(is_name("a:b_c9"));
        assert!(!is_name("9a"));
        assert!(!is_name(""));
        assert!(!is_name("a-b"));
    }
}
