"""A varied mbox for imaptest's `mbox=` (issue #17 item 6), made at run time.

Used by benches/imap_stress.py and tests/imaptest_stress.rs:

  python3 benches/stress_mbox.py OUT.mbox [COUNT] [SEED]

Messages differ in the ways an IMAP server's parser and FETCH paths care
about: plain text (7bit, quoted-printable, 8bit UTF-8), multipart/
alternative, multipart/mixed with base64 attachments of different sizes,
a forwarded message/rfc822, nested multiparts, RFC 2047 encoded-word
headers (UTF-8 and ISO-8859-1, B and Q), folded and long headers, several
addresses, and sizes from about 300 bytes to about 200 KB. imaptest reads
the file line by line and sends every line with CRLF; no body line starts
with "From " (that would split a message).
"""
import base64
import email.utils
import random
import sys

NAMES = ["Ana Lía Pérez", "Jürgen Müller", "Zoë Ω", "李雷", "Renée Ørsted", "Plain Person",
         "Иван Петров", "O'Brien, Pat", "Søren Kierkegaard", "Émile Zola"]
WORDS = ("mail store quota cipher envelope message folder flag keyword seen draft "
         "answered deleted recent naïve façade déjà größe smørrebrød ĉapelo").split()


def encoded_word(text, rnd):
    """`text` as an RFC 2047 encoded word (UTF-8 or ISO-8859-1, B or Q)."""
    charset = "iso-8859-1" if rnd.random() < 0.3 else "utf-8"
    try:
        raw = text.encode(charset)
    except UnicodeEncodeError:
        charset, raw = "utf-8", text.encode("utf-8")
    if rnd.random() < 0.5:
        return f"=?{charset}?B?{base64.b64encode(raw).decode()}?="
    q = "".join(chr(b) if b < 128 and chr(b).isalnum() else ("_" if b == 32 else f"={b:02X}") for b in raw)
    return f"=?{charset}?Q?{q}?="


def address(rnd, domain="example.org"):
    name = rnd.choice(NAMES)
    local = "".join(c for c in name.lower() if c.isascii() and c.isalpha())[:12] or "user"
    if name.isascii():
        shown = f'"{name}"' if "," in name or "'" in name else name
    else:
        shown = encoded_word(name, rnd)
    return f"{shown} <{local}{rnd.randrange(100)}@{domain}>"


def text(rnd, size, utf8=False):
    words = WORDS if utf8 else [w for w in WORDS if w.isascii()]
    lines, total = [], 0
    while total < size:
        line = " ".join(rnd.choice(words) for _ in range(rnd.randrange(3, 12)))
        # why: a body line starting "From " would end the message in mbox
        line = line[0].upper() + line[1:]
        lines.append(line)
        total += len(line.encode()) + 1
    return "\n".join(lines)


def qp(body):
    out = []
    for line in body.split("\n"):
        enc = "".join(c if (c.isascii() and c != "=") else "".join(f"={b:02X}" for b in c.encode())
                      for c in line)
        while len(enc) > 75:
            cut = 75
            while "=" in enc[cut - 2:cut]:
                cut -= 1
            out.append(enc[:cut] + "=")
            enc = enc[cut:]
        out.append(enc)
    return "\n".join(out)


def b64(data):
    s = base64.b64encode(data).decode()
    return "\n".join(s[i:i + 76] for i in range(0, len(s), 76))


def headers(rnd, i, extra_ct):
    subj_words = " ".join(rnd.choice(WORDS) for _ in range(rnd.randrange(2, 9)))
    if rnd.random() < 0.4:
        subject = encoded_word(f"stress {i} {subj_words}", rnd)
    elif rnd.random() < 0.2:
        # a long subject, folded
        subject = f"stress {i} " + " ".join(rnd.choice(WORDS) for _ in range(30))
        subject = subject[:70] + "\n " + subject[70:]
    else:
        subject = f"stress {i} {subj_words}"
    to = ", ".join(address(rnd) for _ in range(rnd.randrange(1, 4)))
    date = email.utils.formatdate(1_760_000_000 + i * 3_607 + rnd.randrange(3_600))
    h = [f"From: {address(rnd)}", f"To: {to}"]
    if rnd.random() < 0.3:
        h.append(f"Cc: {address(rnd, 'example.net')}")
    h += [f"Subject: {subject}", f"Date: {date}", f"Message-ID: <stress-{i}-{rnd.randrange(10**9)}@example.org>"]
    if i > 1 and rnd.random() < 0.3:
        h.append(f"In-Reply-To: <stress-{i - 1}@example.org>")
    if rnd.random() < 0.2:
        h.append("X-Long-Header: " + "\n\t".join(" ".join(rnd.choice(WORDS) for _ in range(8)) for _ in range(4)))
    h.append("MIME-Version: 1.0")
    h += extra_ct
    return "\n".join(h)


def plain(rnd, size):
    kind = rnd.choice(["7bit", "qp", "8bit"])
    body = text(rnd, size, utf8=kind != "7bit")
    if kind == "7bit":
        return ["Content-Type: text/plain; charset=us-ascii"], body
    if kind == "qp":
        return ["Content-Type: text/plain; charset=utf-8", "Content-Transfer-Encoding: quoted-printable"], qp(body)
    return ["Content-Type: text/plain; charset=utf-8", "Content-Transfer-Encoding: 8bit"], body


def part(ct, body):
    return "\n".join(ct) + "\n\n" + body


def multipart(subtype, parts, boundary):
    body = "This is a multi-part message in MIME format.\n"
    for p in parts:
        body += f"\n--{boundary}\n{p}\n"
    body += f"\n--{boundary}--\n"
    return [f'Content-Type: multipart/{subtype}; boundary="{boundary}"'], body


def attachment(rnd, size):
    name = rnd.choice(["report.pdf", "photo.jpg", "données.bin", "archive.tar.gz"])
    ctype = {"pdf": "application/pdf", "jpg": "image/jpeg"}.get(name.rsplit(".", 1)[1],
                                                                   "application/octet-stream")
    fname = name if name.isascii() else encoded_word(name, rnd)
    return part([f'Content-Type: {ctype}; name="{fname}"', "Content-Transfer-Encoding: base64",
                 f'Content-Disposition: attachment; filename="{fname}"'],
                b64(rnd.randbytes(size)))


def message(rnd, i):
    size = int(rnd.choice([300, 1_000, 4_000, 20_000, 60_000, 150_000]) * rnd.uniform(0.5, 1.3))
    kind = rnd.choice(["plain", "plain", "alternative", "mixed", "mixed", "rfc822", "nested"])
    if kind == "plain":
        ct, body = plain(rnd, size)
    elif kind == "alternative":
        ct0, t = plain(rnd, size // 2)
        html = "<html><body><p>" + text(rnd, size // 2).replace("\n", "</p>\n<p>") + "</p></body></html>"
        ct, body = multipart("alternative", [part(ct0, t),
                                             part(["Content-Type: text/html; charset=utf-8"], html)],
                             f"alt-{i}-{rnd.randrange(10**6)}")
    elif kind == "mixed":
        ct0, t = plain(rnd, min(size, 2_000))
        atts = [attachment(rnd, max(100, size // 2)) for _ in range(rnd.randrange(1, 3))]
        ct, body = multipart("mixed", [part(ct0, t)] + atts, f"mix-{i}-{rnd.randrange(10**6)}")
    elif kind == "rfc822":
        ict, ibody = plain(rnd, size // 2)
        inner = headers(rnd, i + 100_000, ict) + "\n\n" + ibody
        ct0, t = plain(rnd, 400)
        ct, body = multipart("mixed", [part(ct0, t), part(["Content-Type: message/rfc822"], inner)],
                             f"fwd-{i}-{rnd.randrange(10**6)}")
    else:
        ct0, t = plain(rnd, size // 3)
        alt = multipart("alternative", [part(ct0, t), part(["Content-Type: text/html"], "<p>hi</p>")],
                        f"in-{i}-{rnd.randrange(10**6)}")
        ct, body = multipart("mixed", [part(*alt), attachment(rnd, size // 3)], f"out-{i}-{rnd.randrange(10**6)}")
    return headers(rnd, i, ct) + "\n\n" + body + "\n"


def write(path, count=300, seed=17):
    rnd = random.Random(seed)
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        for i in range(1, count + 1):
            date = email.utils.formatdate(1_760_000_000 + i * 3_607, usegmt=True)
            # mbox From line: "From sender Www Mmm dd hh:mm:ss yyyy"
            stamp = email.utils.parsedate_to_datetime(date).strftime("%a %b %d %H:%M:%S %Y")
            f.write(f"From stress@example.org {stamp}\n")
            f.write(message(rnd, i))
            f.write("\n")
    return path


if __name__ == "__main__":
    out = sys.argv[1]
    write(out, int(sys.argv[2]) if len(sys.argv) > 2 else 300, int(sys.argv[3]) if len(sys.argv) > 3 else 17)
