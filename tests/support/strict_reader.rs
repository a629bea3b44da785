//! Python's `email` package with `policy.default` as the strict RFC 5322
//! reader the at-rest invariant is stated against: for each message, the
//! raw header fields it accepted (which may be stored in clear) and the
//! text it did not accept as a field (the body, and header lines it
//! dropped as defects), which must never be stored in clear.

use std::process::Command;

use base64::Engine;

use super::tools::{require, run};

/// What the strict reader made of one message.
#[derive(Debug, Clone)]
pub struct StrictView {
    /// Accepted root header fields, raw, with their folded lines.
    pub clear: Vec<Vec<u8>>,
    /// Everything else: dropped header lines, the empty line, the body.
    pub hidden: Vec<Vec<u8>>,
}

// why the alignment: Python keeps accepted fields as (name, value) and
// drops defect lines without a trace; walking its own line split of the
// message with the accepted names in order recovers which raw lines were
// which (all others are hidden), and the value check proves the walk
// matches Python.
const VIEW: &str = r#"
import base64, json, re, sys
from email import policy
from email.parser import BytesParser

NL = re.compile(rb"\r\n|\r|\n")

def lines(b):
    out, start = [], 0
    for m in NL.finditer(b):
        out.append(b[start:m.end()])
        start = m.end()
    if start < len(b):
        out.append(b[start:])
    return out

def view(raw):
    msg = BytesParser(policy=policy.default).parsebytes(raw)
    payload = msg._payload
    assert isinstance(payload, str), "multipart roots are out of scope"
    body = payload.encode("ascii", "surrogateescape")
    # why all lines and not the prefix before the body: Python may drop the
    # empty line between a `From ` line it pushed back and the body.
    head = lines(raw)
    fields = [(n.encode("ascii", "surrogateescape"), v.encode("ascii", "surrogateescape"))
              for n, v in msg.raw_items()]
    clear, hidden, i, k = [], [body], 0, 0
    while i < len(head):
        line = head[i]
        if k < len(fields) and line.startswith(fields[k][0] + b":"):
            j = i + 1
            while j < len(head) and head[j][:1] in (b" ", b"\t"):
                j += 1
            block = b"".join(head[i:j])
            value = block.split(b":", 1)[1].lstrip(b" \t").rstrip(b"\r\n")
            assert value == fields[k][1], (block, fields[k])
            clear.append(block)
            i, k = j, k + 1
        else:
            hidden.append(line)
            i += 1
    assert k == len(fields), (fields, head)
    return {"clear": [base64.b64encode(c).decode() for c in clear],
            "hidden": [base64.b64encode(h).decode() for h in hidden]}

for line in sys.stdin:
    print(json.dumps(view(base64.b64decode(line))))
"#;

/// The strict reader's view of each of `messages`, in one Python process.
pub fn strict_views(messages: &[Vec<u8>]) -> Vec<StrictView> {
    require("python3");
    let b64 = base64::engine::general_purpose::STANDARD;
    let input: String = messages
        .iter()
        .map(|m| format!("{}\n", b64.encode(m)))
        .collect();
    let out = run(Command::new("python3").args(["-c", VIEW]), input.as_bytes());
    let decode = |v: &serde_json::Value| -> Vec<Vec<u8>> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|s| b64.decode(s.as_str().unwrap()).unwrap())
            .collect()
    };
    let views: Vec<StrictView> = String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            StrictView {
                clear: decode(&v["clear"]),
                hidden: decode(&v["hidden"]),
            }
        })
        .collect();
    assert_eq!(views.len(), messages.len());
    views
}
