"""Drives the account page in headless Chromium over WebDriver (Selenium,
Debian's python3-selenium) for tests/account_page.rs.

Usage: drive.py WEBDRIVER_URL BASE_URL CONFIG_JSON

CONFIG_JSON names the account, its password, the certificate files and the
fingerprints of the two good ones, and the directory for the screenshots.
Every step waits for what the page shows and fails with the page's text
when it shows something else. On success the last line of stdout is a
JSON object of what the page showed, which the Rust test checks again.
The browser is ended in every case (driver.quit); the Rust test also kills
chromedriver's whole process group.
"""

import json
import sys
import time

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
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Remote(command_executor=webdriver_url, options=options)
    # why: chromedriver runs on this machine and reads the file itself; the
    # Remote driver would otherwise try Selenium Grid's upload endpoint.
    driver.file_detector = UselessFileDetector()
    try:
        shown = walk(driver, base, config)
        problems = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"
                    and "401" not in e["message"]]
        if problems:
            raise AssertionError("the browser console reported errors: %r" % problems)
        print(json.dumps(shown))
    finally:
        driver.quit()


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

    def upload(self, path, description, outcome, step):
        d = self.driver
        d.find_element(By.ID, "upload-file").send_keys(path)
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


def walk(driver, base, c):
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
    shown["pkcs12"] = s.upload(c["pkcs12"], "with key", "upload-error", "upload-pkcs12")

    # Rotation: a second certificate, then the first one deactivated.
    shown["second"] = s.upload(c["second"], "second key", "upload-result", "upload-second")
    s.wait_row_class(c["second_fp"], "active", "upload-second")
    s.row(c["good_fp"]).find_element(By.CSS_SELECTOR, 'button[data-action="toggle"]').click()
    s.wait_row_class(c["good_fp"], "inactive", "deactivate-first")
    shown["rows"] = [r.text for r in driver.find_elements(By.CSS_SELECTOR, "#certs-body tr")]
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
