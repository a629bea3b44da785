// The account page's script: a small JMAP client
// (urn:sealmail:params:jmap:encryption) that runs in the browser. Its one
// companion, pkcs12.js, takes the certificate out of a PKCS#12 file.
//
// Security notes:
// - The credentials live in one variable of this script and nowhere else:
//   no cookie, no web storage, no URL. Each request carries them in an
//   Authorization header added here, with `credentials: "omit"` so that the
//   browser adds nothing of its own (no cookies, no cached HTTP Basic login)
//   and never pops up its own password dialog. A foreign page cannot make
//   the browser send them, so there is no cross-site request forgery to
//   defend against; the server's cross-site guard refuses such requests too.
// - Everything shown comes from the server or the user and is put into the
//   page with textContent / createElement only, never as markup.
// - A PKCS#12 file (.p12/.pfx) is opened here, in the tab: only the DER of
//   the certificate it holds is sent; the file, its password and its
//   private key never are.
// - Failed logins are slowed down by the server exactly as for any other
//   JMAP client (the 401 arrives after the failed-login wait).
"use strict";

const USING = [
  "urn:ietf:params:jmap:core",
  "urn:sealmail:params:jmap:encryption",
];
const EXPIRY_WARNING_DAYS = 30;
const DAY_MS = 24 * 60 * 60 * 1000;

let login = null; // { authorization, accountId, apiPath, name }

const $ = (id) => document.getElementById(id);

function show(id, text) {
  const el = $(id);
  el.textContent = text;
  el.hidden = false;
}

function hide(...ids) {
  for (const id of ids) {
    $(id).hidden = true;
    $(id).textContent = "";
  }
}

// An error whose message is the server's own description.
class ServerError extends Error {}

function basic(address, password) {
  // why TextEncoder: btoa takes Latin-1 only; the server reads UTF-8.
  const bytes = new TextEncoder().encode(address + ":" + password);
  let binary = "";
  for (const b of bytes) binary += String.fromCharCode(b);
  return "Basic " + btoa(binary);
}

// The path of a session URL: the session names the server by the Host the
// request came with, but a TLS proxy in front may change the scheme, so the
// page keeps its own origin and takes only the path.
function pathOf(url) {
  return new URL(url, window.location.href).pathname;
}

async function httpError(response) {
  const text = await response.text();
  try {
    const problem = JSON.parse(text);
    if (problem && typeof problem.detail === "string") return new ServerError(problem.detail);
  } catch (_) {
    // not JSON: the plain text is the message
  }
  return new ServerError(text.trim() || "the server answered " + response.status);
}

async function fetchSession(authorization) {
  const response = await fetch("/.well-known/jmap", {
    headers: { Authorization: authorization },
    credentials: "omit",
    cache: "no-store",
  });
  if (response.status === 401) {
    throw new ServerError(
      "Wrong address or password. After several failed attempts the server " +
        "waits longer before answering; check both and try again.");
  }
  if (!response.ok) throw await httpError(response);
  return response.json();
}

// Sends method calls; returns the responses in order. A method error becomes
// a ServerError with the server's description.
async function api(calls) {
  const body = {
    using: USING,
    methodCalls: calls.map(([name, args], i) => [
      name, Object.assign({ accountId: login.accountId }, args), "c" + i]),
  };
  const response = await fetch(login.apiPath, {
    method: "POST",
    headers: { Authorization: login.authorization, "Content-Type": "application/json" },
    credentials: "omit",
    cache: "no-store",
    body: JSON.stringify(body),
  });
  if (response.status === 401) {
    logout();
    throw new ServerError("The server no longer accepts your password; log in again.");
  }
  if (!response.ok) throw await httpError(response);
  const reply = await response.json();
  return reply.methodResponses.map(([name, args]) => {
    if (name === "error") {
      throw new ServerError(args.description || args.type);
    }
    return args;
  });
}

// The SetError of `id` in a /set response, as a ServerError, if any.
function setError(result, kind, id) {
  const failed = result[kind] && result[kind][id];
  if (!failed) return null;
  return new ServerError(failed.description || failed.type);
}

// ---- logging in and out ----

async function onLogin(event) {
  event.preventDefault();
  hide("login-error");
  const address = $("login-address").value.trim();
  const password = $("login-password").value;
  const button = $("login-submit");
  button.disabled = true;
  try {
    const authorization = basic(address, password);
    const session = await fetchSession(authorization);
    const accountId = session.primaryAccounts["urn:sealmail:params:jmap:encryption"];
    if (!accountId) throw new ServerError("this server does not offer the encryption extension");
    login = { authorization, accountId, apiPath: pathOf(session.apiUrl), name: session.username };
    $("login-password").value = "";
    $("account-name").textContent = session.username;
    $("login-section").hidden = true;
    $("account").hidden = false;
    await refresh();
  } catch (e) {
    show("login-error", e.message);
  } finally {
    button.disabled = false;
  }
}

function logout() {
  login = null;
  $("account").hidden = true;
  $("login-section").hidden = false;
  $("certs-body").replaceChildren();
  $("upload-p12-password").value = "";
  hide("upload-result", "upload-error", "settings-result", "settings-error",
    "send-test-result", "send-test-error", "certs-error");
}

// ---- showing the account ----

async function refresh() {
  const [certs, settings] = await api([
    ["Certificate/get", {}],
    ["EncryptionSettings/get", { ids: ["singleton"] }],
  ]);
  renderCertificates(certs.list);
  renderSettings(settings.list[0]);
}

function cell(row, text, className) {
  const td = document.createElement("td");
  if (className) td.className = className;
  td.textContent = text;
  row.appendChild(td);
  return td;
}

function fingerprintText(hex) {
  return hex.replace(/(..)(?!$)/g, "$1:");
}

function renderCertificates(list) {
  const body = $("certs-body");
  body.replaceChildren();
  $("certs-empty").hidden = list.length !== 0;
  $("certs-table").hidden = list.length === 0;
  list.sort((a, b) => (b.isActive - a.isActive) || a.notAfter.localeCompare(b.notAfter));
  for (const c of list) {
    const row = document.createElement("tr");
    row.className = c.isActive ? "active" : "inactive";
    row.dataset.fingerprint = c.fingerprint;
    const state = cell(row, c.isActive ? "Active" : "Inactive");
    state.className = c.isActive ? "state-active" : "";
    cell(row, c.emailAddresses.join(", "));
    cell(row, fingerprintText(c.fingerprint), "fingerprint");
    cell(row, c.keyAlgorithm + (c.keySize ? " " + c.keySize + " bits" : ""));
    const until = cell(row, c.notAfter.slice(0, 10));
    const left = Math.floor((Date.parse(c.notAfter) - Date.now()) / DAY_MS);
    if (left < EXPIRY_WARNING_DAYS) {
      const warn = document.createElement("span");
      warn.className = "warn";
      warn.textContent = left < 0 ? "expired" : "expires in " + left + " days: add its successor";
      until.appendChild(warn);
    }
    cell(row, c.description);
    const actions = cell(row, "");
    actions.appendChild(button(c.isActive ? "Deactivate" : "Activate", "toggle",
      () => setActive(c.id, !c.isActive)));
    const remove = button("Remove", "remove", () => removeCertificate(c.id, remove));
    remove.classList.add("danger");
    actions.appendChild(remove);
    body.appendChild(row);
  }
}

function button(text, action, onClick) {
  const b = document.createElement("button");
  b.type = "button";
  b.className = "secondary";
  b.dataset.action = action;
  b.textContent = text;
  b.addEventListener("click", onClick);
  return b;
}

function renderSettings(s) {
  $("enc-enabled").checked = s.isEnabled;
  $("enc-append").checked = s.encryptOnAppend;
  const algorithm = $("enc-algorithm");
  if (![...algorithm.options].some((o) => o.value === s.algorithm)) {
    const other = document.createElement("option");
    other.value = s.algorithm;
    other.textContent = s.algorithm;
    algorithm.appendChild(other);
  }
  algorithm.value = s.algorithm;
  const warnings = $("settings-warnings");
  warnings.replaceChildren();
  for (const w of s.warnings || []) {
    const li = document.createElement("li");
    li.textContent = w;
    warnings.appendChild(li);
  }
  warnings.hidden = warnings.children.length === 0;
}

// ---- certificates ----

const PEM_BLOCK = /-----BEGIN ([A-Z0-9 #]+)-----[\s\S]*?-----END \1-----/g;

function base64(bytes) {
  let binary = "";
  for (const b of bytes) binary += String.fromCharCode(b);
  return btoa(binary);
}

// What to send for a PEM or DER file: PEM text without any key block, or
// the DER bytes in base64. Throws when the file must not be sent.
function certificatePayload(bytes) {
  const text = new TextDecoder("utf-8", { fatal: false }).decode(bytes);
  if (text.includes("-----BEGIN")) {
    const blocks = text.match(PEM_BLOCK) || [];
    const keep = blocks.filter((b) => !/^-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(b));
    if (keep.length === 0 && blocks.length > 0) {
      throw new ServerError("This file holds only a private key, which this page never sends. " +
        "Choose the certificate file instead (see \"Exporting your certificate\").");
    }
    return { value: keep.length ? keep.join("\n") : text, droppedKey: keep.length < blocks.length };
  }
  return { value: base64(bytes), droppedKey: false };
}

function isPem(bytes) {
  return new TextDecoder("utf-8", { fatal: false }).decode(bytes.subarray(0, 65536)).includes("-----BEGIN");
}

// Shows the PKCS#12 password field when the chosen file is one (by its
// name, or by its first bytes), and hides and empties it otherwise.
async function onFileChosen() {
  const file = $("upload-file").files[0];
  let pkcs12 = false;
  if (file) {
    const head = new Uint8Array(await file.slice(0, 16).arrayBuffer());
    pkcs12 = !isPem(head) && Pkcs12.looksLike(head, file.name);
  }
  $("p12-password-row").hidden = !pkcs12;
  if (!pkcs12) $("upload-p12-password").value = "";
}

// The certificates to send for a PKCS#12 file, taken out of it here (see
// pkcs12.js): the file, its key and its password stay in this tab.
async function pkcs12Payloads(bytes, name) {
  if ($("p12-password-row").hidden) {
    $("p12-password-row").hidden = false;
    $("upload-p12-password").focus();
    throw new ServerError("This is a PKCS#12 file (.p12/.pfx): type its password in the field " +
      "above, then click \"Add certificate\" again. Only the certificate is taken out and sent; " +
      "the private key and the password stay in this browser.");
  }
  show("upload-progress", "Opening " + name + " in this browser…");
  try {
    const found = await Pkcs12.certificates(bytes, $("upload-p12-password").value, name);
    return found.certificates.map((der) => ({ value: base64(der), droppedKey: false, pkcs12: name }));
  } finally {
    hide("upload-progress");
  }
}

function addedMessage(c, payload) {
  let message = "Added the certificate for " + c.emailAddresses.join(", ") +
    " (fingerprint " + fingerprintText(c.fingerprint).slice(0, 23) + "…, valid until " +
    c.notAfter.slice(0, 10) + "). While it is active and encryption is on, new mail is encrypted for it.";
  if (payload.droppedKey) message += " The private key in the file was not sent.";
  if (payload.pkcs12) {
    message += " It was taken out of " + payload.pkcs12 +
      " in this browser; the private key and the file's password were not sent.";
  }
  return message;
}

async function onUpload(event) {
  event.preventDefault();
  hide("upload-result", "upload-error");
  const file = $("upload-file").files[0];
  if (!file) {
    show("upload-error", "Choose a certificate file first.");
    return;
  }
  const submit = $("upload-submit");
  submit.disabled = true;
  try {
    const bytes = new Uint8Array(await file.arrayBuffer());
    const pkcs12 = !isPem(bytes) && Pkcs12.looksLike(bytes, file.name);
    const payloads = pkcs12 ? await pkcs12Payloads(bytes, file.name) : [certificatePayload(bytes)];
    const description = $("upload-description").value.trim();
    const create = {};
    payloads.forEach((payload, i) => {
      create["upload" + i] = { certificate: payload.value };
      if (description) create["upload" + i].description = description;
    });
    const [result] = await api([["Certificate/set", { create }]]);
    const added = [], refused = [];
    payloads.forEach((payload, i) => {
      const failed = setError(result, "notCreated", "upload" + i);
      const which = payloads.length > 1 ? "Certificate " + (i + 1) + " of " + payloads.length + ": " : "";
      if (failed) refused.push(which + failed.message);
      else added.push(which + addedMessage(result.created["upload" + i], payload));
    });
    if (refused.length) show("upload-error", refused.join("\n"));
    if (added.length) {
      show("upload-result", added.join("\n"));
      $("upload-file").value = "";
      $("upload-description").value = "";
      $("upload-p12-password").value = "";
      $("p12-password-row").hidden = true;
      await refresh();
    }
  } catch (e) {
    show("upload-error", e.message);
  } finally {
    submit.disabled = false;
  }
}

async function setActive(id, isActive) {
  hide("certs-error");
  try {
    const [result] = await api([["Certificate/set", { update: { [id]: { isActive } } }]]);
    const failed = setError(result, "notUpdated", id);
    if (failed) throw failed;
    await refresh();
  } catch (e) {
    show("certs-error", e.message);
  }
}

// why two clicks: removing cannot be undone, and a confirm() dialog is
// easy to click through.
async function removeCertificate(id, remove) {
  if (remove.dataset.armed !== "yes") {
    remove.dataset.armed = "yes";
    remove.textContent = "Click again to remove";
    setTimeout(() => {
      remove.dataset.armed = "";
      remove.textContent = "Remove";
    }, 5000);
    return;
  }
  hide("certs-error");
  try {
    const [result] = await api([["Certificate/set", { destroy: [id] }]]);
    const failed = setError(result, "notDestroyed", id);
    if (failed) throw failed;
    await refresh();
  } catch (e) {
    show("certs-error", e.message);
  }
}

// ---- settings ----

async function onSaveSettings(event) {
  event.preventDefault();
  hide("settings-result", "settings-error");
  const patch = {
    isEnabled: $("enc-enabled").checked,
    algorithm: $("enc-algorithm").value,
    encryptOnAppend: $("enc-append").checked,
  };
  try {
    const [result] = await api([["EncryptionSettings/set", { update: { singleton: patch } }]]);
    const failed = setError(result, "notUpdated", "singleton");
    if (failed) throw failed;
    show("settings-result", patch.isEnabled
      ? "Saved. New mail is stored encrypted with " + patch.algorithm + "."
      : "Saved. New mail is stored as it arrives, not encrypted.");
  } catch (e) {
    show("settings-error", e.message);
  }
  try {
    await refresh();
  } catch (e) {
    show("settings-error", e.message);
  }
}

async function onSendTest() {
  hide("send-test-result", "send-test-error");
  const b = $("send-test");
  b.disabled = true;
  try {
    const [result] = await api([["EncryptionSettings/sendTest", {}]]);
    show("send-test-result", "Sent: look for \"" + result.subject + "\" in your inbox.");
  } catch (e) {
    show("send-test-error", e.message);
  } finally {
    b.disabled = false;
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("login-form").addEventListener("submit", onLogin);
  $("logout").addEventListener("click", logout);
  $("upload-form").addEventListener("submit", onUpload);
  $("upload-file").addEventListener("change", () => {
    hide("upload-result", "upload-error");
    onFileChosen().catch((e) => show("upload-error", e.message));
  });
  $("settings-form").addEventListener("submit", onSaveSettings);
  $("send-test").addEventListener("click", onSendTest);
});
