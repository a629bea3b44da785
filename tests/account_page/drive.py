"""Drives the account page in headless Chromium over WebDriver (Selenium,
Debian's python3-selenium) for tests/account_page.rs.

Usage: drive.py WEBDRIVER_URL BASE_URL CONFIG_JSON

CONFIG_JSON names the account, its password, the certificate and PKCS#12
files, the fingerprints the page must list, the secrets that must never
leave the browser, and the directory for the screenshots.
Every step waits for what the page shows and fails with the page's text
when it shows something else. On success the last line of stdout is a
JSON object of what the page showed, which the Rust test checks again.
The browser is ended in every case (driver.quit); the Rust test also kills
chromedriver's whole process group.
"""

import base64
import json
import sys
import urllib.request

from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.remote.file_detector import UselessFileDetector
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import Select, WebDriverWait

WAIT_S = 30


def main():
    webdriver_url, base, config = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                "--disable-gpu", "--window-size=1280,1400", "--no-first-run",
                "--user-data-dir=" + config["profile"]):
        options.add_argument(arg)
    # why: the page must work with nothing but its own files; a console
    # error (a CSP violation, an exception) fails the run.
    # why performance: Chromium's network events carry every request body
    # the page sent, which is how the walk proves what never left it.
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Remote(command_executor=webdriver_url, options=options)
    # why: chromedriver runs on this machine and reads the file itself; the
    # Remote driver would otherwise try Selenium Grid's upload endpoint.
    driver.file_detector = UselessFileDetector()
    # why: the Remote driver does not know chromedriver's CDP endpoint.
    driver.command_executor._commands["executeCdpCommand"] = (
        "POST", "/session/$sessionId/goog/cdp/execute")
    try:
        network = Network(driver)
        shown = walk(driver, base, config, network)
        shown.update(network.scan(config))
        problems = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"
                    and "401" not in e["message"]]
        if problems:
            raise AssertionError("the browser console reported errors: %r" % problems)
        print(json.dumps(shown))
    finally:
        driver.quit()


class Network:
    """Every request the page made, from Chromium's performance log."""

    def __init__(self, driver):
        self.driver, self.requests = driver, []

    def drain(self):
        """Takes the new requests out of the log, with their bodies. why now:
        Network.getRequestPostData only answers while Chromium still holds
        the request."""
        for entry in self.driver.get_log("performance"):
            message = json.loads(entry["message"])["message"]
            if message.get("method") != "Network.requestWillBeSent":
                continue
            params = message["params"]
            request = params["request"]
            body = b""
            if request.get("postDataEntries"):
                body = b"".join(base64.b64decode(e.get("bytes", "")) for e in request["postDataEntries"])
            elif "postData" in request:
                body = request["postData"].encode("utf-8", "surrogateescape")
            elif request.get("hasPostData"):
                # why: Chromium leaves large bodies out of the event.
                data = self.driver.execute("executeCdpCommand", {
                    "cmd": "Network.getRequestPostData",
                    "params": {"requestId": params["requestId"]}})["value"]
                body = data["postData"].encode("utf-8", "surrogateescape")
            self.requests.append((request["method"], request["url"], body))

    def scan(self, c):
        """Where each secret (p12 files, private keys in DER and PEM, the p12
        password) and each uploaded certificate shows up in a request."""
        self.drain()
        leaks, seen = [], {}
        secrets = [(path, needles(read(path))) for path in c["never_sent_files"]]
        for path in c["never_sent_pem"]:
            lines = [l for l in read(path).decode().splitlines() if l and not l.startswith("-----")]
            secrets.append((path, [l.encode() for l in lines if len(l) >= 40]))
        secrets.append(("the PKCS#12 password", [c["p12_password"].encode()]))
        for method, url, body in self.requests:
            where = (method + " " + url).encode() + b"\n" + body
            for name, found in secrets:
                if any(n in where for n in found):
                    leaks.append("%s in %s %s" % (name, method, url))
            for path in c["sent_files"]:
                if any(n in where for n in needles(read(path))):
                    seen.setdefault(path, []).append("%s %s" % (method, url))
        return {"requests": len(self.requests), "leaks": leaks, "sent_seen": seen,
                "bodies": sum(1 for _, _, b in self.requests if b)}


def read(path):
    with open(path, "rb") as f:
        return f.read()


def needles(data):
    """48-byte pieces of `data` from four places, raw, in hex and in base64
    at each of the three alignments a longer base64 text could give them."""
    out = []
    for at in (0, len(data) // 4, len(data) // 2, 3 * len(data) // 4):
        piece = data[at:at + 50]
        out += [piece[:48], piece[:48].hex().encode(), piece[:48].hex().upper().encode()]
        out += [base64.b64encode(piece[k:k + 48]) for k in range(3) if len(piece) >= k + 48]
    return out


def server_certs(base, address, password):
    """The account's certificate fingerprints, asked over JMAP outside the
    browser."""
    auth = "Basic " + base64.b64encode(("%s:%s" % (address, password)).encode()).decode()
    session = json.load(urllib.request.urlopen(urllib.request.Request(
        base + "/.well-known/jmap", headers={"Authorization": auth}), timeout=WAIT_S))
    account = session["primaryAccounts"]["urn:sealmail:params:jmap:encryption"]
    body = json.dumps({"using": ["urn:ietf:params:jmap:core", "urn:sealmail:params:jmap:encryption"],
                       "methodCalls": [["Certificate/get", {"accountId": account}, "c"]]}).encode()
    api = urllib.request.Request(base + "/jmap/api", data=body, headers={
        "Authorization": auth, "Content-Type": "application/json"})
    reply = json.load(urllib.request.urlopen(api, timeout=WAIT_S))
    return sorted(c["fingerprint"] for c in reply["methodResponses"][0][1]["list"])


class Steps:
    def __init__(self, driver, shots):
        self.driver, self.shots, self.n = driver, shots, 0

    def shot(self, name):
        self.n += 1
        self.driver.save_screenshot("%s/%02d-%s.png" % (self.shots, self.n, name))

    def visible_text(self, element_id, step, not_before=None):
        """Waits until #element_id is shown (with a text other than
        `not_before`, the one it showed before the step); returns its text."""
        def shown(d):
            el = d.find_element(By.ID, element_id)
            return el.is_displayed() and el.text != not_before and el.text
        try:
            return WebDriverWait(self.driver, WAIT_S).until(shown)
        except TimeoutException:
            self.shot("FAILED-" + step)
            raise AssertionError("%s: #%s never appeared; the page showed:\n%s"
                                 % (step, element_id, self.driver.find_element(By.TAG_NAME, "body").text))

    def text_now(self, element_id):
        el = self.driver.find_element(By.ID, element_id)
        return el.text if el.is_displayed() else None

    def click_for(self, button_id, outcome, step):
        """Clicks #button_id; waits for #outcome to show a new text."""
        before = self.text_now(outcome)
        self.driver.find_element(By.ID, button_id).click()
        return self.visible_text(outcome, step, before)

    def hidden(self, element_id):
        return not self.driver.find_element(By.ID, element_id).is_displayed()

    def upload(self, path, description, outcome, step, p12_password=None):
        d = self.driver
        d.find_element(By.ID, "upload-file").send_keys(path)
        if p12_password is not None:
            # The page asks for the file's password once it sees a .p12.
            field = WebDriverWait(d, WAIT_S).until(
                EC.visibility_of_element_located((By.ID, "upload-p12-password")))
            field.clear()
            field.send_keys(p12_password)
        note = d.find_element(By.ID, "upload-description")
        note.clear()
        note.send_keys(description)
        text = self.click_for("upload-submit", outcome, step)
        self.shot(step)
        other = "upload-error" if outcome == "upload-result" else "upload-result"
        assert self.hidden(other), "%s: both outcomes shown" % step
        return text

    def row(self, fingerprint):
        return self.driver.find_element(
            By.CSS_SELECTOR, 'tr[data-fingerprint="%s"]' % fingerprint)

    def wait_row_class(self, fingerprint, cls, step):
        def has(_):
            try:
                return cls in self.row(fingerprint).get_attribute("class").split()
            except Exception:
                return False
        try:
            WebDriverWait(self.driver, WAIT_S).until(has)
        except TimeoutException:
            self.shot("FAILED-" + step)
            raise AssertionError("%s: the row of %s never became %s; page:\n%s" % (
                step, fingerprint, cls, self.driver.find_element(By.TAG_NAME, "body").text))


def walk(driver, base, c, network):
    s = Steps(driver, c["shots"])
    shown = {}
    driver.get(base + "/")
    WebDriverWait(driver, WAIT_S).until(EC.visibility_of_element_located((By.ID, "login-form")))
    shown["url_after_root"] = driver.current_url
    s.shot("login")

    # A wrong password: the server's refusal, after its failed-login wait.
    driver.find_element(By.ID, "login-address").send_keys(c["address"])
    driver.find_element(By.ID, "login-password").send_keys("not the password")
    shown["wrong_password"] = s.click_for("login-submit", "login-error", "wrong-password")
    s.shot("wrong-password")

    driver.find_element(By.ID, "login-password").clear()
    driver.find_element(By.ID, "login-password").send_keys(c["password"])
    driver.find_element(By.ID, "login-submit").click()
    s.visible_text("account", "login")
    shown["account_name"] = driver.find_element(By.ID, "account-name").text
    shown["empty"] = s.visible_text("certs-empty", "login")
    s.shot("logged-in")

    shown["good"] = s.upload(c["good"], "first key", "upload-result", "upload-good")
    s.wait_row_class(c["good_fp"], "active", "upload-good")
    row = s.row(c["good_fp"])
    shown["good_row"] = row.text

    shown["bad"] = s.upload(c["bad"], "not for mail", "upload-error", "upload-bad")

    # PKCS#12 files the page cannot or must not open: nothing is sent.
    before = server_certs(base, c["address"], c["password"])
    shown["p12_wrong_password"] = s.upload(
        c["p12"], "with key", "upload-error", "p12-wrong-password", "not the p12 password")
    shown["certs_unchanged_after_wrong_password"] = before == server_certs(
        base, c["address"], c["password"])
    shown["p12_garbage"] = s.upload(c["p12_garbage"], "garbage", "upload-error", "p12-garbage", "x")
    shown["p12_truncated"] = s.upload(
        c["p12_truncated"], "cut short", "upload-error", "p12-truncated", c["p12_password"])
    network.drain()

    # Legacy PKCS#12 files (RC2-40 with a key; 3DES with only certificates,
    # one of them a CA): the page takes the user's certificate out.
    shown["p12_legacy"] = s.upload(c["p12_legacy"], "legacy p12", "upload-result", "p12-legacy-rc2",
                                   c["p12_password"])
    s.wait_row_class(c["legacy_fp"], "active", "p12-legacy-rc2")
    shown["p12_3des"] = s.upload(c["p12_3des"], "3DES p12", "upload-result", "p12-legacy-3des",
                                 c["p12_password"])
    s.wait_row_class(c["des_fp"], "active", "p12-legacy-3des")
    network.drain()

    # Rotation: the second key arrives as an OpenSSL 3 PKCS#12 (AES-256,
    # PBKDF2-SHA256, SHA-256 MAC, with a CA certificate), then the others
    # are deactivated.
    shown["second"] = s.upload(c["p12"], "second key", "upload-result", "upload-second-p12",
                               c["p12_password"])
    s.wait_row_class(c["second_fp"], "active", "upload-second-p12")
    network.drain()
    for fp in (c["good_fp"], c["legacy_fp"], c["des_fp"]):
        s.row(fp).find_element(By.CSS_SELECTOR, 'button[data-action="toggle"]').click()
        s.wait_row_class(fp, "inactive", "deactivate-" + fp[:8])
    shown["rows"] = [r.text for r in driver.find_elements(By.CSS_SELECTOR, "#certs-body tr")]
    shown["row_fingerprints"] = [r.get_attribute("data-fingerprint")
                                 for r in driver.find_elements(By.CSS_SELECTOR, "#certs-body tr")]
    s.shot("rotated")

    # Sending a test message while encryption is off: the server refuses.
    shown["test_while_off"] = s.click_for("send-test", "send-test-error", "send-test-off")

    # Encryption on, with AES-128.
    enabled = driver.find_element(By.ID, "enc-enabled")
    if not enabled.is_selected():
        enabled.click()
    Select(driver.find_element(By.ID, "enc-algorithm")).select_by_value("AES-128-CBC")
    shown["settings"] = s.click_for("settings-save", "settings-result", "enable")
    s.shot("encryption-on")

    shown["test_sent"] = s.click_for("send-test", "send-test-result", "send-test")
    s.shot("test-sent")
    shown["test_again"] = s.click_for("send-test", "send-test-error", "send-test-again")
    s.shot("test-rate-limited")

    # Logging out forgets the account on the page.
    driver.find_element(By.ID, "logout").click()
    s.visible_text("login-section", "logout")
    shown["rows_after_logout"] = len(driver.find_elements(By.CSS_SELECTOR, "#certs-body tr"))
    s.shot("logged-out")
    return shown


if __name__ == "__main__":
    main()
