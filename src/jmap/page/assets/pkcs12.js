// Takes the certificates out of a PKCS#12 (PFX) file in the browser, for the
// account page (page.js): RFC 7292, with PBES2 from RFC 8018.
//
// Why it is here and why it has this shape:
// - A .p12/.pfx file holds the user's private key. The file, its password
//   and the key never leave the browser: this script hands page.js the DER
//   of the chosen certificate(s) only, which go to the server through the
//   same Certificate/set as any other upload, so every certificate rule
//   still applies there. Key bags (keyBag, pkcs8ShroudedKeyBag) are never
//   decrypted or parsed beyond their localKeyId attribute, which tells
//   which certificate belongs to the key.
// - WebCrypto (crypto.subtle) does the hashing, HMAC, PBKDF2 and AES. It has
//   neither RC2 nor DES, which the legacy schemes that Apple Keychain,
//   Windows and `openssl pkcs12 -legacy` still produce need, so those two
//   ciphers are written out below (RFC 2268; FIPS 46-3), decryption only.
// - The file is hostile input: every length is checked against what is
//   left, nesting depth and element count are bounded, and an iteration
//   count above the limits below is refused before any work is done, so a
//   bad file ends in a message, never in a hung tab.
// - The reader takes BER as well as DER (indefinite lengths, constructed
//   OCTET STRINGs): RFC 7292 allows BER, and Windows has written it.
"use strict";

const Pkcs12 = (() => {
  const MAX_FILE_BYTES = 4 * 1024 * 1024;
  // why two limits: PBKDF2 runs inside the browser's own crypto, while the
  // PKCS#12 function hashes here in script, several times slower; real
  // files use a few thousand (OpenSSL 2048, Windows 2000).
  const MAX_ITERATIONS = 10000000;
  const MAX_KDF_ITERATIONS = 1000000;
  const MAX_DEPTH = 40;
  const MAX_ELEMENTS = 200000;

  const SEQUENCE = 0x30, SET = 0x31, INTEGER = 0x02, OCTET_STRING = 0x04, OID = 0x06;
  const BOOLEAN = 0x01, EXPLICIT_0 = 0xa0, IMPLICIT_0 = 0x80, EXTENSIONS = 0xa3;

  const O = {
    data: "1.2.840.113549.1.7.1",
    signedData: "1.2.840.113549.1.7.2",
    envelopedData: "1.2.840.113549.1.7.3",
    encryptedData: "1.2.840.113549.1.7.6",
    keyBag: "1.2.840.113549.1.12.10.1.1",
    shroudedKeyBag: "1.2.840.113549.1.12.10.1.2",
    certBag: "1.2.840.113549.1.12.10.1.3",
    safeContentsBag: "1.2.840.113549.1.12.10.1.6",
    x509Certificate: "1.2.840.113549.1.9.22.1",
    localKeyId: "1.2.840.113549.1.9.21",
    pbes2: "1.2.840.113549.1.5.13",
    pbkdf2: "1.2.840.113549.1.5.12",
    basicConstraints: "2.5.29.19",
  };

  // Digests by OID (MAC and PKCS#12 KDF): u = output bytes, v = block bytes.
  const DIGESTS = {
    "1.3.14.3.2.26": { name: "SHA-1", u: 20, v: 64 },
    "2.16.840.1.101.3.4.2.1": { name: "SHA-256", u: 32, v: 64 },
    "2.16.840.1.101.3.4.2.2": { name: "SHA-384", u: 48, v: 128 },
    "2.16.840.1.101.3.4.2.3": { name: "SHA-512", u: 64, v: 128 },
  };
  const SHA1 = DIGESTS["1.3.14.3.2.26"];

  // PBKDF2 pseudo-random functions by OID (RFC 8018 B.1).
  const PRFS = {
    "1.2.840.113549.2.7": "SHA-1",
    "1.2.840.113549.2.9": "SHA-256",
    "1.2.840.113549.2.10": "SHA-384",
    "1.2.840.113549.2.11": "SHA-512",
  };

  // PBES2 encryption schemes by OID.
  const PBES2_CIPHERS = {
    "2.16.840.1.101.3.4.1.2": { name: "AES-128-CBC", keyBytes: 16, aes: true },
    "2.16.840.1.101.3.4.1.22": { name: "AES-192-CBC", keyBytes: 24, aes: true },
    "2.16.840.1.101.3.4.1.42": { name: "AES-256-CBC", keyBytes: 32, aes: true },
    "1.2.840.113549.3.7": { name: "DES-EDE3-CBC", keyBytes: 24, aes: false },
  };

  // RFC 7292 appendix C: the PKCS#12 password-based schemes.
  const LEGACY = {
    "1.2.840.113549.1.12.1.1": { name: "pbeWithSHAAnd128BitRC4" },
    "1.2.840.113549.1.12.1.2": { name: "pbeWithSHAAnd40BitRC4" },
    "1.2.840.113549.1.12.1.3": { name: "pbeWithSHAAnd3-KeyTripleDES-CBC", keyBytes: 24, cipher: "des3" },
    "1.2.840.113549.1.12.1.4": { name: "pbeWithSHAAnd2-KeyTripleDES-CBC", keyBytes: 16, cipher: "des3" },
    "1.2.840.113549.1.12.1.5": { name: "pbeWithSHAAnd128BitRC2-CBC", keyBytes: 16, cipher: "rc2" },
    "1.2.840.113549.1.12.1.6": { name: "pbeWithSHAAnd40BitRC2-CBC", keyBytes: 5, cipher: "rc2" },
  };

  // Names of algorithms we know but do not implement, for the message.
  const OTHER_NAMES = {
    "1.2.840.113549.1.5.3": "pbeWithMD5AndDES-CBC",
    "1.2.840.113549.1.5.10": "pbeWithSHA1AndDES-CBC",
    "1.2.840.113549.1.5.6": "pbeWithMD5AndRC2-CBC",
    "1.2.840.113549.1.5.11": "pbeWithSHA1AndRC2-CBC",
    "1.3.6.1.4.1.11591.4.11": "scrypt",
    "1.2.840.113549.2.8": "HMAC-SHA-224",
    "1.2.840.113549.2.5": "MD5",
    "2.16.840.1.101.3.4.2.4": "SHA-224",
    "1.2.840.113549.1.5.14": "PBMAC1",
  };

  // A message for the user; `kind` lets a caller tell the cases apart.
  class Pkcs12Error extends Error {
    constructor(kind, message) {
      super(message);
      this.kind = kind;
    }
  }

  // The file is not well-formed PKCS#12 (or not PKCS#12 at all).
  class Malformed extends Error {}

  // CBC padding did not check out: the password (or the file) is wrong.
  class BadPadding extends Error {}

  function fallback(name) {
    return "take the certificate out on your own computer instead: " +
      "openssl pkcs12 -in " + name + " -clcerts -nokeys -out cert.pem " +
      "(add -legacy for an old file), then add cert.pem here.";
  }

  function unsupported(what, name) {
    return new Pkcs12Error("unsupported", "\"" + name + "\" is protected with " + what +
      ", which this page cannot open; " + fallback(name));
  }

  // ---- a bounded BER/DER reader ----

  // The tree of `bytes`: { tag, value } for a primitive element,
  // { tag, children } for a constructed one. Throws Malformed.
  function parse(bytes) {
    let elements = 0;
    function read(pos, end, depth) {
      if (depth > MAX_DEPTH) throw new Malformed("it is nested too deeply");
      if (++elements > MAX_ELEMENTS) throw new Malformed("it has too many elements");
      if (end - pos < 2) throw new Malformed("it is cut short");
      const tag = bytes[pos];
      if ((tag & 0x1f) === 0x1f) throw new Malformed("it has an unexpected tag");
      const constructed = (tag & 0x20) !== 0;
      let p = pos + 2;
      let length = bytes[pos + 1];
      if (length === 0x80) {
        if (!constructed) throw new Malformed("it has an indefinite length on a primitive element");
        const children = [];
        for (;;) {
          if (end - p < 2) throw new Malformed("it is cut short");
          if (bytes[p] === 0 && bytes[p + 1] === 0) return { tag, children, next: p + 2 };
          const child = read(p, end, depth + 1);
          children.push(child);
          p = child.next;
        }
      }
      if (length > 0x80) {
        const count = length & 0x7f;
        if (count > 4) throw new Malformed("it has an impossible length");
        if (end - p < count) throw new Malformed("it is cut short");
        length = 0;
        for (let i = 0; i < count; i++) length = length * 256 + bytes[p++];
      }
      if (length > end - p) throw new Malformed("it is cut short");
      const contentEnd = p + length;
      if (!constructed) return { tag, value: bytes.subarray(p, contentEnd), next: contentEnd };
      const children = [];
      while (p < contentEnd) {
        const child = read(p, contentEnd, depth + 1);
        children.push(child);
        p = child.next;
      }
      return { tag, children, next: contentEnd };
    }
    return read(0, bytes.length, 0);
  }

  // Child `i` of `node`, which must have `tag` when one is given.
  function at(node, i, tag, what) {
    const child = node && node.children && node.children[i];
    if (!child || (tag !== undefined && child.tag !== tag)) {
      throw new Malformed("its " + what + " is missing or malformed");
    }
    return child;
  }

  function concat(parts) {
    const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let at = 0;
    for (const p of parts) {
      out.set(p, at);
      at += p.length;
    }
    return out;
  }

  // The content of an OCTET STRING, primitive or constructed (BER); also
  // of an [n] IMPLICIT OCTET STRING when `tag` says which.
  function octets(node, what, tag = OCTET_STRING) {
    if (node && node.tag === tag && node.value) return node.value;
    if (node && node.tag === (tag | 0x20) && node.children) {
      return concat(node.children.map((c) => octets(c, what)));
    }
    throw new Malformed("its " + what + " is missing or malformed");
  }

  function oid(node, what) {
    const v = node && node.tag === OID && node.value;
    if (!v || v.length === 0 || v.length > 64 || (v[v.length - 1] & 0x80)) {
      throw new Malformed("its " + what + " is missing or malformed");
    }
    const arcs = [];
    let n = 0;
    for (const b of v) {
      n = n * 128 + (b & 0x7f);
      if (!(b & 0x80)) {
        arcs.push(n);
        n = 0;
      }
    }
    const first = arcs[0] < 40 ? [0, arcs[0]] : arcs[0] < 80 ? [1, arcs[0] - 40] : [2, arcs[0] - 80];
    return first.concat(arcs.slice(1)).join(".");
  }

  // A non-negative INTEGER; Infinity when it is too large to matter.
  function count(node, what) {
    const v = node && node.tag === INTEGER && node.value;
    if (!v || v.length === 0 || (v[0] & 0x80)) throw new Malformed("its " + what + " is malformed");
    if (v.length > 6) return Infinity;
    let n = 0;
    for (const b of v) n = n * 256 + b;
    return n;
  }

  function tooCostly(n, limit, name) {
    return new Pkcs12Error("tooCostly", "\"" + name + "\" asks for " +
      (n === Infinity ? "an enormous number of" : n.toLocaleString("en")) +
      " password iterations, more than this page does (at most " +
      limit.toLocaleString("en") + " for this scheme); " + fallback(name));
  }

  function iterations(node, name, limit = MAX_KDF_ITERATIONS) {
    const n = count(node, "iteration count");
    if (n < 1) throw new Malformed("its iteration count is zero");
    if (n > limit) throw tooCostly(n, limit, name);
    return n;
  }

  // What one file may cost in all: why: many encrypted parts, each within
  // the limit, must not add up to minutes.
  function budget(name) {
    const left = { kdf: 4 * MAX_KDF_ITERATIONS, pbkdf2: 2 * MAX_ITERATIONS };
    return (kind, rounds) => {
      left[kind] -= rounds;
      if (left[kind] < 0) {
        throw new Pkcs12Error("tooCostly", "\"" + name + "\" asks for more password iterations " +
          "in all than this page does; " + fallback(name));
      }
    };
  }

  function hex(bytes) {
    return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  // ---- key derivation, MAC, decryption ----

  async function digest(name, data) {
    return new Uint8Array(await crypto.subtle.digest(name, data));
  }

  // The password as a BMPString with its two-byte terminator (RFC 7292 B.1).
  function bmp(password) {
    const out = new Uint8Array(password.length * 2 + 2);
    for (let i = 0; i < password.length; i++) {
      const c = password.charCodeAt(i);
      out[2 * i] = c >> 8;
      out[2 * i + 1] = c & 0xff;
    }
    return out;
  }

  // `source` repeated to fill a whole number of `v`-byte blocks.
  function repeat(source, v) {
    const out = new Uint8Array(source.length ? v * Math.ceil(source.length / v) : 0);
    for (let i = 0; i < out.length; i++) out[i] = source[i % source.length];
    return out;
  }

  // The PKCS#12 key derivation function, RFC 7292 appendix B.2: `n` bytes
  // for purpose `id` (1 key, 2 IV, 3 MAC key).
  async function pkcs12Kdf(hash, password, salt, id, rounds, n, spend) {
    const { name, u, v } = hash;
    spend("kdf", rounds * Math.ceil(n / u));
    const d = new Uint8Array(v).fill(id);
    const i = concat([repeat(salt, v), repeat(password, v)]);
    const out = new Uint8Array(n);
    for (let done = 0; ;) {
      const a = await chain(hash, await digest(name, concat([d, i])), rounds - 1);
      out.set(a.subarray(0, Math.min(u, n - done)), done);
      done += u;
      if (done >= n) return out;
      const b = repeat(a, v);
      for (let j = 0; j < i.length; j += v) {
        let carry = 1;
        for (let k = v - 1; k >= 0; k--) {
          const sum = i[j + k] + b[k] + carry;
          i[j + k] = sum & 0xff;
          carry = sum >> 8;
        }
      }
    }
  }

  // `a` hashed `rounds` more times. why not crypto.subtle.digest in a loop:
  // each call costs tens of microseconds of promise round trip, so a large
  // (but allowed) iteration count would take many minutes; SHA-1 and SHA-256
  // of one block are done here instead, yielding to the page now and then.
  async function chain(hash, a, rounds) {
    const compress = hash.name === "SHA-1" ? sha1Once : hash.name === "SHA-256" ? sha256Once : null;
    if (!compress) {
      for (let r = 0; r < rounds; r++) a = await digest(hash.name, a);
      return a;
    }
    let words = new Int32Array(a.length / 4);
    for (let i = 0; i < words.length; i++) {
      words[i] = (a[4 * i] << 24) | (a[4 * i + 1] << 16) | (a[4 * i + 2] << 8) | a[4 * i + 3];
    }
    for (let done = 0; done < rounds;) {
      const until = Math.min(rounds, done + 200000);
      for (; done < until; done++) words = compress(words);
      if (done < rounds) await new Promise((resolve) => setTimeout(resolve, 0));
    }
    const out = new Uint8Array(a.length);
    words.forEach((w, i) => {
      out[4 * i] = w >>> 24;
      out[4 * i + 1] = (w >>> 16) & 0xff;
      out[4 * i + 2] = (w >>> 8) & 0xff;
      out[4 * i + 3] = w & 0xff;
    });
    return out;
  }

  const W80 = new Int32Array(80);
  const SHA1_INIT = Int32Array.from([0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476, 0xc3d2e1f0]);

  // SHA-1 (FIPS 180-4) of the 20 bytes in `h` (five big-endian words).
  function sha1Once(h) {
    const w = W80;
    w.fill(0, 0, 16);
    w.set(h);
    w[5] = 0x80000000 | 0;
    w[15] = 160;
    for (let i = 16; i < 80; i++) {
      const x = w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16];
      w[i] = (x << 1) | (x >>> 31);
    }
    let a = SHA1_INIT[0], b = SHA1_INIT[1], c = SHA1_INIT[2], d = SHA1_INIT[3], e = SHA1_INIT[4];
    for (let i = 0; i < 80; i++) {
      let f;
      if (i < 20) f = ((b & c) | (~b & d)) + 0x5a827999;
      else if (i < 40) f = (b ^ c ^ d) + 0x6ed9eba1;
      else if (i < 60) f = ((b & c) | (b & d) | (c & d)) - 0x70e44324;
      else f = (b ^ c ^ d) - 0x359d3e2a;
      const t = (((a << 5) | (a >>> 27)) + f + e + w[i]) | 0;
      e = d;
      d = c;
      c = (b << 30) | (b >>> 2);
      b = a;
      a = t;
    }
    return Int32Array.of(a + SHA1_INIT[0], b + SHA1_INIT[1], c + SHA1_INIT[2], d + SHA1_INIT[3],
      e + SHA1_INIT[4]);
  }

  const SHA256_K = Int32Array.from([
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
  ]);
  const SHA256_INIT = Int32Array.from([
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
  ]);
  const W64 = new Int32Array(64);

  // SHA-256 (FIPS 180-4) of the 32 bytes in `h` (eight big-endian words).
  function sha256Once(h) {
    const w = W64;
    w.fill(0, 0, 16);
    w.set(h);
    w[8] = 0x80000000 | 0;
    w[15] = 256;
    for (let i = 16; i < 64; i++) {
      const x = w[i - 15], y = w[i - 2];
      const s0 = ((x >>> 7) | (x << 25)) ^ ((x >>> 18) | (x << 14)) ^ (x >>> 3);
      const s1 = ((y >>> 17) | (y << 15)) ^ ((y >>> 19) | (y << 13)) ^ (y >>> 10);
      w[i] = (w[i - 16] + s0 + w[i - 7] + s1) | 0;
    }
    const k = SHA256_K, init = SHA256_INIT;
    let a = init[0], b = init[1], c = init[2], d = init[3], e = init[4], f = init[5], g = init[6],
      hh = init[7];
    for (let i = 0; i < 64; i++) {
      const s1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7));
      const t1 = (hh + s1 + ((e & f) ^ (~e & g)) + k[i] + w[i]) | 0;
      const s0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10));
      const t2 = (s0 + ((a & b) ^ (a & c) ^ (b & c))) | 0;
      hh = g;
      g = f;
      f = e;
      e = (d + t1) | 0;
      d = c;
      c = b;
      b = a;
      a = (t1 + t2) | 0;
    }
    return Int32Array.of(a + init[0], b + init[1], c + init[2], d + init[3], e + init[4],
      f + init[5], g + init[6], hh + init[7]);
  }

  // The BMPString password that the MAC accepts. why two tries for an
  // empty one: implementations disagree whether "" is two zero bytes or none.
  async function checkMac(mac, content, password, name, spend) {
    const algorithm = oid(at(at(mac, 0, SEQUENCE, "MAC"), 0, SEQUENCE, "MAC algorithm").children[0],
      "MAC algorithm");
    const hash = DIGESTS[algorithm];
    if (!hash) throw unsupported("a " + (OTHER_NAMES[algorithm] || algorithm) + " MAC", name);
    const expected = octets(at(mac, 0, SEQUENCE, "MAC").children[1], "MAC value");
    const salt = octets(at(mac, 1, OCTET_STRING, "MAC salt"), "MAC salt");
    const rounds = mac.children[2] ? iterations(mac.children[2], name) : 1;
    const candidates = password === "" ? [bmp(""), new Uint8Array(0)] : [bmp(password)];
    for (const candidate of candidates) {
      const raw = await pkcs12Kdf(hash, candidate, salt, 3, rounds, hash.u, spend);
      const key = await crypto.subtle.importKey("raw", raw, { name: "HMAC", hash: hash.name },
        false, ["verify"]);
      if (await crypto.subtle.verify("HMAC", key, expected, content)) return candidate;
    }
    throw new Pkcs12Error("wrongPassword", "The password is wrong: it does not open \"" + name +
      "\" (the file's integrity check fails with it). Type the password that was set when " +
      "the file was exported; it is usually not your mail password.");
  }

  function unpad(out, size) {
    const n = out[out.length - 1];
    if (n < 1 || n > size) throw new BadPadding();
    for (let k = 1; k <= n; k++) if (out[out.length - k] !== n) throw new BadPadding();
    return out.subarray(0, out.length - n);
  }

  // CBC decryption with a 64-bit block cipher given as `decryptBlock`.
  function cbc8(decryptBlock, iv, data) {
    if (iv.length !== 8) throw new Malformed("its IV has the wrong length");
    if (data.length === 0 || data.length % 8) throw new Malformed("its encrypted part is cut short");
    const out = new Uint8Array(data.length);
    let previous = iv;
    for (let i = 0; i < data.length; i += 8) {
      const block = data.subarray(i, i + 8);
      const plain = decryptBlock(block);
      for (let k = 0; k < 8; k++) out[i + k] = plain[k] ^ previous[k];
      previous = block;
    }
    return unpad(out, 8);
  }

  async function pbes2(params, data, password, name, spend) {
    const kdf = at(params, 0, SEQUENCE, "PBES2 key derivation");
    const scheme = at(params, 1, SEQUENCE, "PBES2 cipher");
    const kdfOid = oid(kdf.children[0], "PBES2 key derivation");
    if (kdfOid !== O.pbkdf2) throw unsupported("PBES2 with " + (OTHER_NAMES[kdfOid] || kdfOid), name);
    const kp = at(kdf, 1, SEQUENCE, "PBKDF2 parameters");
    const saltNode = at(kp, 0, undefined, "PBKDF2 salt");
    if (saltNode.tag !== OCTET_STRING) throw unsupported("PBKDF2 with a salt from elsewhere", name);
    const rounds = iterations(at(kp, 1, INTEGER, "PBKDF2 iteration count"), name, MAX_ITERATIONS);
    let next = 2;
    let keyLength = null;
    if (kp.children[next] && kp.children[next].tag === INTEGER) {
      keyLength = count(kp.children[next], "PBKDF2 key length");
      next += 1;
    }
    let prf = "SHA-1";
    if (kp.children[next]) {
      const prfOid = oid(at(kp.children[next], 0, OID, "PBKDF2 function"), "PBKDF2 function");
      prf = PRFS[prfOid];
      if (!prf) throw unsupported("PBKDF2 with " + (OTHER_NAMES[prfOid] || prfOid), name);
    }
    const cipherOid = oid(scheme.children[0], "PBES2 cipher");
    const cipher = PBES2_CIPHERS[cipherOid];
    if (!cipher) throw unsupported("PBES2 with " + (OTHER_NAMES[cipherOid] || cipherOid), name);
    if (keyLength !== null && keyLength !== cipher.keyBytes) {
      throw new Malformed("its PBKDF2 key length does not fit " + cipher.name);
    }
    const iv = octets(at(scheme, 1, undefined, "IV"), "IV");
    spend("pbkdf2", rounds * Math.ceil(cipher.keyBytes / 20));
    const base = await crypto.subtle.importKey("raw", new TextEncoder().encode(password),
      "PBKDF2", false, ["deriveBits"]);
    const raw = new Uint8Array(await crypto.subtle.deriveBits(
      { name: "PBKDF2", salt: saltNode.value, iterations: rounds, hash: prf }, base, cipher.keyBytes * 8));
    if (!cipher.aes) return cbc8(des3(raw), iv, data);
    if (iv.length !== 16) throw new Malformed("its IV has the wrong length");
    if (data.length === 0 || data.length % 16) throw new Malformed("its encrypted part is cut short");
    let key;
    try {
      key = await crypto.subtle.importKey("raw", raw, { name: "AES-CBC" }, false, ["decrypt"]);
    } catch (_) {
      // why: Chromium's WebCrypto has no AES-192.
      throw unsupported(cipher.name + " (this browser does not offer it)", name);
    }
    try {
      return new Uint8Array(await crypto.subtle.decrypt({ name: "AES-CBC", iv }, key, data));
    } catch (_) {
      throw new BadPadding();
    }
  }

  async function legacy(scheme, params, data, password, name, spend) {
    if (!scheme.cipher) throw unsupported(scheme.name, name);
    const salt = octets(at(params, 0, OCTET_STRING, "salt"), "salt");
    const rounds = iterations(at(params, 1, INTEGER, "iteration count"), name);
    const key = await pkcs12Kdf(SHA1, password, salt, 1, rounds, scheme.keyBytes, spend);
    const iv = await pkcs12Kdf(SHA1, password, salt, 2, rounds, 8, spend);
    const block = scheme.cipher === "rc2" ? rc2(key, key.length * 8) : des3(key);
    return cbc8(block, iv, data);
  }

  // The plaintext SafeContents of an EncryptedData ContentInfo.
  async function decrypt(contentInfo, passwords, name, spend) {
    const encrypted = at(at(contentInfo, 1, EXPLICIT_0, "encrypted data"), 0, SEQUENCE, "encrypted data");
    const info = at(encrypted, 1, SEQUENCE, "encrypted content");
    const algorithm = at(info, 1, SEQUENCE, "encryption algorithm");
    const content = info.children[2];
    if (!content) return null;
    const data = octets(content, "encrypted content", IMPLICIT_0);
    const algorithmOid = oid(algorithm.children[0], "encryption algorithm");
    if (algorithmOid === O.pbes2) {
      return pbes2(at(algorithm, 1, SEQUENCE, "PBES2 parameters"), data, passwords.text, name, spend);
    }
    const scheme = LEGACY[algorithmOid];
    if (!scheme) throw unsupported(OTHER_NAMES[algorithmOid] || "the algorithm " + algorithmOid, name);
    return legacy(scheme, at(algorithm, 1, SEQUENCE, "PBE parameters"), data, passwords.bmp, name,
      spend);
  }

  // ---- the bags ----

  function localKeyId(attributes) {
    if (!attributes || attributes.tag !== SET || !attributes.children) return null;
    for (const attribute of attributes.children) {
      if (attribute.tag !== SEQUENCE || !attribute.children) continue;
      if (oid(attribute.children[0], "attribute") !== O.localKeyId) continue;
      const values = attribute.children[1];
      const first = values && values.children && values.children[0];
      if (first && first.tag === OCTET_STRING && first.value) return hex(first.value);
    }
    return null;
  }

  // Collects the certificates and key ids of a SafeContents into `found`.
  function collect(safeContents, found, depth) {
    if (safeContents.tag !== SEQUENCE || !safeContents.children) {
      throw new Malformed("its SafeContents is not a SEQUENCE");
    }
    for (const bag of safeContents.children) {
      const type = oid(at(bag, 0, OID, "bag type"), "bag type");
      const value = at(at(bag, 1, EXPLICIT_0, "bag value"), 0, undefined, "bag value");
      const id = localKeyId(bag.children[2]);
      if (type === O.keyBag || type === O.shroudedKeyBag) {
        // why nothing more: the key is not ours to read.
        found.keys += 1;
        if (id) found.keyIds.add(id);
      } else if (type === O.certBag) {
        if (oid(at(value, 0, OID, "certificate type"), "certificate type") !== O.x509Certificate) continue;
        const der = octets(at(at(value, 1, EXPLICIT_0, "certificate"), 0, undefined, "certificate"),
          "certificate");
        found.certificates.push({ der, id });
      } else if (type === O.safeContentsBag) {
        if (depth > 4) throw new Malformed("its SafeContents are nested too deeply");
        collect(value, found, depth + 1);
      }
    }
  }

  // Whether the certificate `der` says basicConstraints cA TRUE.
  function isCa(der) {
    try {
      const tbs = at(parse(der), 0, SEQUENCE, "certificate");
      const extensions = tbs.children.find((c) => c.tag === EXTENSIONS);
      if (!extensions) return false;
      for (const extension of at(extensions, 0, SEQUENCE, "extensions").children) {
        if (oid(at(extension, 0, OID, "extension"), "extension") !== O.basicConstraints) continue;
        const value = extension.children[extension.children.length - 1];
        const constraints = parse(octets(value, "basicConstraints"));
        const ca = constraints.children && constraints.children[0];
        return Boolean(ca && ca.tag === BOOLEAN && ca.value.length === 1 && ca.value[0] !== 0);
      }
    } catch (e) {
      // why: a certificate we cannot read is not a CA as far as choosing
      // goes; the server says what is wrong with it.
      if (!(e instanceof Malformed)) throw e;
    }
    return false;
  }

  // The user's certificates among `found`: those whose localKeyId is a
  // key's, else those that are not CAs.
  function choose(found, name) {
    if (found.certificates.length === 0) {
      throw new Pkcs12Error("noCertificate", "\"" + name + "\" holds no certificate" +
        (found.keys ? ", only a private key" : "") + ". Export it again with the certificate " +
        "included, or add the certificate alone (PEM, DER or PKCS#7).");
    }
    const unique = (list) => {
      const seen = new Set();
      return list.filter((c) => !seen.has(hex(c.der)) && seen.add(hex(c.der)));
    };
    const withKey = unique(found.certificates.filter((c) => c.id && found.keyIds.has(c.id)));
    if (withKey.length) return { certificates: withKey.map((c) => c.der), how: "key" };
    const own = unique(found.certificates.filter((c) => !isCa(c.der)));
    if (own.length) return { certificates: own.map((c) => c.der), how: "notCa" };
    throw new Pkcs12Error("noCertificate", "\"" + name + "\" holds only CA certificates " +
      "(issuers), not your own. Export it again from the program that holds your key.");
  }

  // ---- the PFX ----

  // Whether `bytes` (the first 16 are enough) or `name` look like a PFX:
  // PFX ::= SEQUENCE { version INTEGER (3), ... }.
  function looksLike(bytes, name) {
    if (/\.(p12|pfx)$/i.test(name)) return true;
    if (bytes.length < 8 || bytes[0] !== 0x30) return false;
    let i = 1;
    if (bytes[1] & 0x80) i += 1 + (bytes[1] & 0x7f);
    else i += 1;
    return bytes[i] === 0x02 && bytes[i + 1] === 0x01 && bytes[i + 2] === 0x03;
  }

  async function open(bytes, password, name) {
    const pfx = parse(bytes);
    if (pfx.tag !== SEQUENCE || !pfx.children) throw new Malformed("it does not start with a SEQUENCE");
    if (count(at(pfx, 0, INTEGER, "version"), "version") !== 3) {
      throw new Malformed("its version is not 3");
    }
    const authSafe = at(pfx, 1, SEQUENCE, "content");
    const authType = oid(authSafe.children[0], "content type");
    if (authType === O.signedData) throw unsupported("public-key integrity mode (signedData)", name);
    if (authType !== O.data) throw new Malformed("its content is not of type data");
    const content = octets(at(at(authSafe, 1, EXPLICIT_0, "content"), 0, undefined, "content"), "content");
    const mac = pfx.children[2];
    const passwords = { text: password, bmp: bmp(password) };
    const spend = budget(name);
    if (mac) {
      if (mac.tag !== SEQUENCE) throw new Malformed("its MAC is malformed");
      passwords.bmp = await checkMac(mac, content, password, name, spend);
    }
    const safes = parse(content);
    if (safes.tag !== SEQUENCE || !safes.children) throw new Malformed("its AuthenticatedSafe is malformed");
    const found = { certificates: [], keyIds: new Set(), keys: 0 };
    for (const contentInfo of safes.children) {
      const type = oid(at(contentInfo, 0, OID, "content type"), "content type");
      let plain;
      if (type === O.data) {
        plain = octets(at(at(contentInfo, 1, EXPLICIT_0, "content"), 0, undefined, "content"), "content");
      } else if (type === O.encryptedData) {
        try {
          plain = await decrypt(contentInfo, passwords, name, spend);
        } catch (e) {
          if (!(e instanceof BadPadding)) throw e;
          throw mac
            ? new Malformed("its certificates do not decrypt with the password its integrity check accepts")
            : new Pkcs12Error("wrongPassword", "The password is wrong: it does not decrypt \"" + name +
              "\". Type the password that was set when the file was exported.");
        }
        if (!plain) continue;
      } else if (type === O.envelopedData) {
        throw unsupported("public-key privacy mode (envelopedData)", name);
      } else {
        throw unsupported("content of type " + type, name);
      }
      collect(parse(plain), found, 0);
    }
    return choose(found, name);
  }

  // The DER of the user's certificate(s) in the PKCS#12 file `bytes`
  // (`name` is the file's name, for messages): { certificates: [Uint8Array],
  // how: "key" | "notCa" }. Throws Pkcs12Error with a message for the user.
  async function certificates(bytes, password, name) {
    if (!(globalThis.crypto && globalThis.crypto.subtle)) {
      throw new Pkcs12Error("noWebCrypto", "This browser does not give this page WebCrypto, " +
        "which it needs to open a PKCS#12 file (browsers offer it only to pages served over " +
        "HTTPS or from this computer); open the page over HTTPS, or " + fallback(name));
    }
    if (bytes.length > MAX_FILE_BYTES) {
      throw new Pkcs12Error("notPkcs12", "\"" + name + "\" is too large for a PKCS#12 file " +
        "holding a certificate (over 4 MiB).");
    }
    try {
      return await open(bytes, password, name);
    } catch (e) {
      if (!(e instanceof Malformed)) throw e;
      throw new Pkcs12Error("notPkcs12", "\"" + name + "\" is not a PKCS#12 file, or it is damaged " +
        "or cut short (" + e.message + "). Export it again, or add the certificate alone " +
        "(PEM, DER or PKCS#7).");
    }
  }

  // ---- RC2 (RFC 2268), decryption only ----

  const PITABLE = Uint8Array.from([
    0xd9, 0x78, 0xf9, 0xc4, 0x19, 0xdd, 0xb5, 0xed, 0x28, 0xe9, 0xfd, 0x79, 0x4a, 0xa0, 0xd8, 0x9d,
    0xc6, 0x7e, 0x37, 0x83, 0x2b, 0x76, 0x53, 0x8e, 0x62, 0x4c, 0x64, 0x88, 0x44, 0x8b, 0xfb, 0xa2,
    0x17, 0x9a, 0x59, 0xf5, 0x87, 0xb3, 0x4f, 0x13, 0x61, 0x45, 0x6d, 0x8d, 0x09, 0x81, 0x7d, 0x32,
    0xbd, 0x8f, 0x40, 0xeb, 0x86, 0xb7, 0x7b, 0x0b, 0xf0, 0x95, 0x21, 0x22, 0x5c, 0x6b, 0x4e, 0x82,
    0x54, 0xd6, 0x65, 0x93, 0xce, 0x60, 0xb2, 0x1c, 0x73, 0x56, 0xc0, 0x14, 0xa7, 0x8c, 0xf1, 0xdc,
    0x12, 0x75, 0xca, 0x1f, 0x3b, 0xbe, 0xe4, 0xd1, 0x42, 0x3d, 0xd4, 0x30, 0xa3, 0x3c, 0xb6, 0x26,
    0x6f, 0xbf, 0x0e, 0xda, 0x46, 0x69, 0x07, 0x57, 0x27, 0xf2, 0x1d, 0x9b, 0xbc, 0x94, 0x43, 0x03,
    0xf8, 0x11, 0xc7, 0xf6, 0x90, 0xef, 0x3e, 0xe7, 0x06, 0xc3, 0xd5, 0x2f, 0xc8, 0x66, 0x1e, 0xd7,
    0x08, 0xe8, 0xea, 0xde, 0x80, 0x52, 0xee, 0xf7, 0x84, 0xaa, 0x72, 0xac, 0x35, 0x4d, 0x6a, 0x2a,
    0x96, 0x1a, 0xd2, 0x71, 0x5a, 0x15, 0x49, 0x74, 0x4b, 0x9f, 0xd0, 0x5e, 0x04, 0x18, 0xa4, 0xec,
    0xc2, 0xe0, 0x41, 0x6e, 0x0f, 0x51, 0xcb, 0xcc, 0x24, 0x91, 0xaf, 0x50, 0xa1, 0xf4, 0x70, 0x39,
    0x99, 0x7c, 0x3a, 0x85, 0x23, 0xb8, 0xb4, 0x7a, 0xfc, 0x02, 0x36, 0x5b, 0x25, 0x55, 0x97, 0x31,
    0x2d, 0x5d, 0xfa, 0x98, 0xe3, 0x8a, 0x92, 0xae, 0x05, 0xdf, 0x29, 0x10, 0x67, 0x6c, 0xba, 0xc9,
    0xd3, 0x00, 0xe6, 0xcf, 0xe1, 0x9e, 0xa8, 0x2c, 0x63, 0x16, 0x01, 0x3f, 0x58, 0xe2, 0x89, 0xa9,
    0x0d, 0x38, 0x34, 0x1b, 0xab, 0x33, 0xff, 0xb0, 0xbb, 0x48, 0x0c, 0x5f, 0xb9, 0xb1, 0xcd, 0x2e,
    0xc5, 0xf3, 0xdb, 0x47, 0xe5, 0xa5, 0x9c, 0x77, 0x0a, 0xa6, 0x20, 0x68, 0xfe, 0x7f, 0xc1, 0xad,
  ]);

  // The block decryption of RC2 with `key` and `bits` effective key bits.
  function rc2(key, bits) {
    const l = new Uint8Array(128);
    l.set(key);
    const t = key.length;
    for (let i = t; i < 128; i++) l[i] = PITABLE[(l[i - 1] + l[i - t]) & 0xff];
    const t8 = (bits + 7) >> 3;
    const tm = 0xff >> (8 * t8 - bits);
    l[128 - t8] = PITABLE[l[128 - t8] & tm];
    for (let i = 127 - t8; i >= 0; i--) l[i] = PITABLE[l[i + 1] ^ l[i + t8]];
    const k = new Uint16Array(64);
    for (let i = 0; i < 64; i++) k[i] = l[2 * i] | (l[2 * i + 1] << 8);
    const shifts = [1, 2, 3, 5];
    return (block) => {
      const r = [0, 1, 2, 3].map((i) => block[2 * i] | (block[2 * i + 1] << 8));
      let j = 63;
      const mix = () => {
        for (let i = 3; i >= 0; i--) {
          const s = shifts[i];
          r[i] = ((r[i] >> s) | (r[i] << (16 - s))) & 0xffff;
          const a = r[(i + 3) & 3], b = r[(i + 2) & 3], c = r[(i + 1) & 3];
          r[i] = (r[i] - k[j] - (a & b) - (~a & c)) & 0xffff;
          j -= 1;
        }
      };
      const mash = () => {
        for (let i = 3; i >= 0; i--) r[i] = (r[i] - k[r[(i + 3) & 3] & 63]) & 0xffff;
      };
      for (let n = 0; n < 5; n++) mix();
      mash();
      for (let n = 0; n < 6; n++) mix();
      mash();
      for (let n = 0; n < 5; n++) mix();
      const out = new Uint8Array(8);
      for (let i = 0; i < 4; i++) {
        out[2 * i] = r[i] & 0xff;
        out[2 * i + 1] = r[i] >> 8;
      }
      return out;
    };
  }

  // ---- DES and triple DES (FIPS 46-3), decryption only ----

  const IP = [58, 50, 42, 34, 26, 18, 10, 2, 60, 52, 44, 36, 28, 20, 12, 4,
    62, 54, 46, 38, 30, 22, 14, 6, 64, 56, 48, 40, 32, 24, 16, 8,
    57, 49, 41, 33, 25, 17, 9, 1, 59, 51, 43, 35, 27, 19, 11, 3,
    61, 53, 45, 37, 29, 21, 13, 5, 63, 55, 47, 39, 31, 23, 15, 7];
  const FP = (() => {
    const fp = new Array(64);
    IP.forEach((from, to) => {
      fp[from - 1] = to + 1;
    });
    return fp;
  })();
  const E = [32, 1, 2, 3, 4, 5, 4, 5, 6, 7, 8, 9, 8, 9, 10, 11, 12, 13, 12, 13, 14, 15, 16, 17,
    16, 17, 18, 19, 20, 21, 20, 21, 22, 23, 24, 25, 24, 25, 26, 27, 28, 29, 28, 29, 30, 31, 32, 1];
  const P = [16, 7, 20, 21, 29, 12, 28, 17, 1, 15, 23, 26, 5, 18, 31, 10,
    2, 8, 24, 14, 32, 27, 3, 9, 19, 13, 30, 6, 22, 11, 4, 25];
  const PC1 = [57, 49, 41, 33, 25, 17, 9, 1, 58, 50, 42, 34, 26, 18, 10, 2, 59, 51, 43, 35, 27,
    19, 11, 3, 60, 52, 44, 36, 63, 55, 47, 39, 31, 23, 15, 7, 62, 54, 46, 38, 30, 22, 14, 6, 61,
    53, 45, 37, 29, 21, 13, 5, 28, 20, 12, 4];
  const PC2 = [14, 17, 11, 24, 1, 5, 3, 28, 15, 6, 21, 10, 23, 19, 12, 4, 26, 8, 16, 7, 27, 20,
    13, 2, 41, 52, 31, 37, 47, 55, 30, 40, 51, 45, 33, 48, 44, 49, 39, 56, 34, 53, 46, 42, 50, 36,
    29, 32];
  const ROTATIONS = [1, 1, 2, 2, 2, 2, 2, 2, 1, 2, 2, 2, 2, 2, 2, 1];
  const SBOXES = [
    [14, 4, 13, 1, 2, 15, 11, 8, 3, 10, 6, 12, 5, 9, 0, 7, 0, 15, 7, 4, 14, 2, 13, 1, 10, 6, 12, 11, 9, 5, 3, 8,
      4, 1, 14, 8, 13, 6, 2, 11, 15, 12, 9, 7, 3, 10, 5, 0, 15, 12, 8, 2, 4, 9, 1, 7, 5, 11, 3, 14, 10, 0, 6, 13],
    [15, 1, 8, 14, 6, 11, 3, 4, 9, 7, 2, 13, 12, 0, 5, 10, 3, 13, 4, 7, 15, 2, 8, 14, 12, 0, 1, 10, 6, 9, 11, 5,
      0, 14, 7, 11, 10, 4, 13, 1, 5, 8, 12, 6, 9, 3, 2, 15, 13, 8, 10, 1, 3, 15, 4, 2, 11, 6, 7, 12, 0, 5, 14, 9],
    [10, 0, 9, 14, 6, 3, 15, 5, 1, 13, 12, 7, 11, 4, 2, 8, 13, 7, 0, 9, 3, 4, 6, 10, 2, 8, 5, 14, 12, 11, 15, 1,
      13, 6, 4, 9, 8, 15, 3, 0, 11, 1, 2, 12, 5, 10, 14, 7, 1, 10, 13, 0, 6, 9, 8, 7, 4, 15, 14, 3, 11, 5, 2, 12],
    [7, 13, 14, 3, 0, 6, 9, 10, 1, 2, 8, 5, 11, 12, 4, 15, 13, 8, 11, 5, 6, 15, 0, 3, 4, 7, 2, 12, 1, 10, 14, 9,
      10, 6, 9, 0, 12, 11, 7, 13, 15, 1, 3, 14, 5, 2, 8, 4, 3, 15, 0, 6, 10, 1, 13, 8, 9, 4, 5, 11, 12, 7, 2, 14],
    [2, 12, 4, 1, 7, 10, 11, 6, 8, 5, 3, 15, 13, 0, 14, 9, 14, 11, 2, 12, 4, 7, 13, 1, 5, 0, 15, 10, 3, 9, 8, 6,
      4, 2, 1, 11, 10, 13, 7, 8, 15, 9, 12, 5, 6, 3, 0, 14, 11, 8, 12, 7, 1, 14, 2, 13, 6, 15, 0, 9, 10, 4, 5, 3],
    [12, 1, 10, 15, 9, 2, 6, 8, 0, 13, 3, 4, 14, 7, 5, 11, 10, 15, 4, 2, 7, 12, 9, 5, 6, 1, 13, 14, 0, 11, 3, 8,
      9, 14, 15, 5, 2, 8, 12, 3, 7, 0, 4, 10, 1, 13, 11, 6, 4, 3, 2, 12, 9, 5, 15, 10, 11, 14, 1, 7, 6, 0, 8, 13],
    [4, 11, 2, 14, 15, 0, 8, 13, 3, 12, 9, 7, 5, 10, 6, 1, 13, 0, 11, 7, 4, 9, 1, 10, 14, 3, 5, 12, 2, 15, 8, 6,
      1, 4, 11, 13, 12, 3, 7, 14, 10, 15, 6, 8, 0, 5, 9, 2, 6, 11, 13, 8, 1, 4, 10, 7, 9, 5, 0, 15, 14, 2, 3, 12],
    [13, 2, 8, 4, 6, 15, 11, 1, 10, 9, 3, 14, 5, 0, 12, 7, 1, 15, 13, 8, 10, 3, 7, 4, 12, 5, 6, 11, 0, 14, 9, 2,
      7, 11, 4, 1, 9, 12, 14, 2, 0, 6, 10, 13, 15, 3, 5, 8, 2, 1, 14, 7, 4, 10, 8, 13, 15, 12, 9, 0, 3, 5, 6, 11],
  ];

  // why bit arrays: a few kilobytes of certificates are all that pass
  // through here, so the plainest form of the standard is fast enough and
  // the easiest to check against it.
  function bitsOf(bytes) {
    const bits = new Array(bytes.length * 8);
    for (let i = 0; i < bits.length; i++) bits[i] = (bytes[i >> 3] >> (7 - (i & 7))) & 1;
    return bits;
  }

  function bytesOf(bits) {
    const out = new Uint8Array(bits.length / 8);
    for (let i = 0; i < bits.length; i++) out[i >> 3] |= bits[i] << (7 - (i & 7));
    return out;
  }

  const permute = (bits, table) => table.map((p) => bits[p - 1]);

  function desSubkeys(key) {
    const cd = permute(bitsOf(key), PC1);
    let c = cd.slice(0, 28), d = cd.slice(28);
    return ROTATIONS.map((n) => {
      c = c.slice(n).concat(c.slice(0, n));
      d = d.slice(n).concat(d.slice(0, n));
      return permute(c.concat(d), PC2);
    });
  }

  // One DES block (64 bits in, 64 out) through `subkeys` in their order.
  function desBits(bits, subkeys) {
    const x = permute(bits, IP);
    let left = x.slice(0, 32), right = x.slice(32);
    for (const subkey of subkeys) {
      const e = permute(right, E).map((b, i) => b ^ subkey[i]);
      const s = [];
      for (let box = 0; box < 8; box++) {
        const b = e.slice(6 * box, 6 * box + 6);
        const v = SBOXES[box][(b[0] * 2 + b[5]) * 16 + b[1] * 8 + b[2] * 4 + b[3] * 2 + b[4]];
        s.push((v >> 3) & 1, (v >> 2) & 1, (v >> 1) & 1, v & 1);
      }
      const f = permute(s, P);
      const next = left.map((b, i) => b ^ f[i]);
      left = right;
      right = next;
    }
    return permute(right.concat(left), FP);
  }

  // The block decryption of DES-EDE3 (a 16-byte key is the two-key form).
  function des3(key) {
    const k1 = desSubkeys(key.subarray(0, 8));
    const k2 = desSubkeys(key.subarray(8, 16));
    const k3 = key.length >= 24 ? desSubkeys(key.subarray(16, 24)) : k1;
    const reverse = (k) => k.slice().reverse();
    const [d1, d3] = [reverse(k1), reverse(k3)];
    return (block) => bytesOf(desBits(desBits(desBits(bitsOf(block), d3), k2), d1));
  }

  return { certificates, looksLike, Pkcs12Error };
})();
