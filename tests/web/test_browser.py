"""The app in a real headless Chromium (Debian's ``chromium`` + ``chromium-driver``, driven by Selenium).

Served by uvicorn in a thread on a free loopback port, over the module's real Elasticsearch data. The
user logs in, searches a number of a real capture, opens the call, reads a message, exports the pcap
(checked with tshark); a capture made here with dumpcap carries ``<script>`` in its User-Agent and must
render as text. Screenshots of every page go to ``artifacts/screenshots/``.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest
from webhelpers import (
    B2BUA,
    PASSWORD,
    PROXY,
    analyze,
    capture_messages,
    index_records,
    serve,
)

pytestmark = [pytest.mark.stack, pytest.mark.peers]

SHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"
XSS_UA = "<script>window.__xss=1;alert(1)</script>"
XSS_NAME = "<img src=x onerror=window.__xss=2>"


def _need(path: str) -> str:
    if not os.path.exists(path):
        pytest.skip(f"{path} is not installed (infra/setup-system.sh installs chromium and chromium-driver)")
    return path


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    _need("/usr/bin/chromium")
    _need("/usr/bin/chromedriver")
    downloads = tmp_path_factory.mktemp("downloads")
    opts = webdriver.ChromeOptions()
    opts.binary_location = "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--window-size=1400,1000", f"--user-data-dir={tmp_path_factory.mktemp('chromium')}"):
        opts.add_argument(arg)
    opts.add_experimental_option("prefs", {"download.default_directory": str(downloads),
                                           "download.prompt_for_download": False})
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
    driver.downloads = downloads
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def base_url(app):
    with serve(app) as url:
        yield url


def shot(driver, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    height = driver.execute_script("return Math.max(document.body.scrollHeight, 600)")
    driver.set_window_size(1400, min(int(height) + 40, 4000))
    driver.save_screenshot(str(SHOTS / f"{name}.png"))
    driver.set_window_size(1400, 1000)


def login(driver, base_url: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(f"{base_url}/login")
    driver.delete_all_cookies()  # a fresh session for each test
    driver.get(f"{base_url}/trace")
    assert "/login" in driver.current_url  # nothing visible without a login
    shot(driver, "01-login")
    driver.find_element(By.ID, "username").send_keys("alice")
    driver.find_element(By.ID, "password").send_keys(PASSWORD)
    driver.find_element(By.ID, "login").click()
    WebDriverWait(driver, 10).until(lambda d: d.current_url.endswith("/trace"))


def wait_for(driver, css: str, timeout: float = 10) -> list:
    """The elements matching ``css`` once the page that shows them has loaded (a click does not wait)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(lambda d: d.find_elements(By.CSS_SELECTOR, css))


def _wait_download(folder: Path, suffix: str, timeout: float = 15) -> Path:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = [p for p in folder.iterdir() if p.name.endswith(suffix)]
        if done:
            return done[0]
        time.sleep(0.1)
    raise AssertionError(f"no {suffix} downloaded into {folder}: {list(folder.iterdir())}")


def tshark_messages(path: Path) -> list[tuple[str, str, str]]:
    tshark = shutil.which("tshark") or pytest.skip("tshark is not installed")
    out = subprocess.run([tshark, "-r", str(path), "-Y", "sip", "-T", "fields", "-e", "sip.Method",
                          "-e", "sip.Status-Code", "-e", "sip.Call-ID"], capture_output=True, text=True, check=True)
    return [tuple(line.split("\t")) for line in out.stdout.splitlines() if line.strip()]


def test_support_engineer_traces_a_number_reads_the_ladder_and_exports_the_pcap(browser, base_url, indexed):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    login(browser, base_url)
    browser.find_element(By.ID, "number").send_keys("201")
    Select(browser.find_element(By.ID, "last")).select_by_value("30m")
    browser.find_element(By.ID, "search").click()
    rows = wait_for(browser, "#results tbody tr")
    sent = indexed.messages[PROXY]
    call_id = sent[0].call_id
    assert len(rows) == len(sent) == 11
    assert {r.get_attribute("data-call-id") for r in rows} == {call_id}
    first = [c.text for c in rows[-1].find_elements(By.TAG_NAME, "td")]  # oldest last: the first INVITE
    assert first[1:6] == ["INVITE", "201", "101", "GW/v.6.20A.027.012", "10.33.6.101:5060"]
    shot(browser, "02-trace")

    rows[0].find_element(By.CSS_SELECTOR, "td.m a").click()
    arrows = wait_for(browser, "svg.ladder a.arrow")
    assert len(arrows) == len(sent)
    hosts = [t.text for t in browser.find_elements(By.CSS_SELECTOR, "svg.ladder .hostname")]
    assert hosts == ["10.33.6.101:5060", "10.33.6.102:5080", "10.33.6.100:5060"]
    labels = [a.find_element(By.CSS_SELECTOR, "text.label").text for a in arrows]
    assert labels[:3] == ["INVITE", "100 Trying", "INVITE"] and labels[-1] == "200 OK"
    shot(browser, "03-call")

    arrows[4].click()  # the 180 Ringing from the phone
    (panel,) = wait_for(browser, "#m5:target")
    assert panel.is_displayed() and "180 Ringing" in panel.text
    assert "The called phone is ringing." in panel.text
    assert "The unique id of this call" in panel.text  # the Call-ID header explained
    assert not browser.find_element(By.ID, "m4").is_displayed()
    shot(browser, "04-message")

    browser.find_element(By.ID, "export-pcap").click()
    pcap = _wait_download(browser.downloads, ".pcap")
    want = [(m.method or "", str(m.status_code or ""), m.call_id) for m in sent]
    assert tshark_messages(pcap) == want


def test_a_call_through_a_b2bua_shows_both_legs_in_one_ladder(browser, base_url, indexed):
    from selenium.webdriver.common.by import By

    login(browser, base_url)
    browser.get(f"{base_url}/trace?number=913417084&last=30m")
    rows = browser.find_elements(By.CSS_SELECTOR, "#results tbody tr")
    assert len(rows) == len(indexed.messages[B2BUA]) == 13
    rows[0].find_element(By.CSS_SELECTOR, "td.m a").click()
    arrows = wait_for(browser, "svg.ladder a.arrow")
    assert len(arrows) == 13
    colours = {a.find_element(By.TAG_NAME, "line").get_attribute("stroke") for a in arrows}
    assert len(colours) == 2  # one colour per leg
    assert len(browser.find_elements(By.CSS_SELECTOR, ".summaries .leg")) == 2
    shot(browser, "03b-call-two-legs")


def test_alerts_and_kpi_pages_show_the_indexed_data(browser, base_url, indexed):
    from selenium.webdriver.common.by import By

    login(browser, base_url)
    browser.get(f"{base_url}/alerts?last=1h&live=false")
    open_rows = browser.find_elements(By.CSS_SELECTOR, "#alerts-open tbody tr")
    assert open_rows and "scanner_user_agent" in open_rows[0].text
    evidence = browser.find_elements(By.CSS_SELECTOR, "#alerts-open a.evidence")
    assert evidence
    shot(browser, "05-alerts")
    evidence[0].click()
    assert wait_for(browser, "svg.ladder a.arrow")  # the evidence call opens

    browser.get(f"{base_url}/kpis?last=1h&scope=all")
    charts = browser.find_elements(By.CSS_SELECTOR, "figure.chart")
    assert [c.find_element(By.TAG_NAME, "figcaption").text.split(" ")[0] for c in charts] == \
        ["ASR", "NER", "Post-dial", "Call", "Concurrent"]
    assert browser.find_elements(By.CSS_SELECTOR, "figure.chart polyline, figure.chart circle")
    shot(browser, "06-kpis")


# ---------------------------------------------------------------------------------------------- XSS

def _xss_capture(path: Path) -> None:
    """Capture with dumpcap on lo an INVITE whose User-Agent and From display name carry markup, and the
    486 answering it (crafted datagrams between two loopback addresses)."""
    dumpcap = shutil.which("dumpcap") or pytest.skip("dumpcap is not installed")
    proc = subprocess.Popen([dumpcap, "-i", "lo", "-f", "udp port 5060 and host 127.0.0.77", "-c", "2", "-P",
                             "-w", str(path)], stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 15
        line = ""
        while "Capturing on" not in line:
            assert time.monotonic() < deadline and proc.poll() is None, f"dumpcap did not start: {line}"
            line = proc.stderr.readline()
        time.sleep(0.3)
        invite = ("INVITE sip:0213417099@127.0.0.77 SIP/2.0\r\n"
                  "Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-xss-1\r\n"
                  "Max-Forwards: 70\r\n"
                  f'From: "{XSS_NAME}" <sip:0213417001@127.0.0.1>;tag=xss1\r\n'
                  "To: <sip:0213417099@127.0.0.77>\r\n"
                  "Call-ID: xss-<b>bold</b>@127.0.0.1\r\n"
                  "CSeq: 1 INVITE\r\n"
                  "Contact: <sip:0213417001@127.0.0.1:5060>\r\n"
                  f"User-Agent: {XSS_UA}\r\n"
                  "Content-Length: 0\r\n\r\n")
        busy = ("SIP/2.0 486 Busy Here\r\n"
                "Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-xss-1\r\n"
                f'From: "{XSS_NAME}" <sip:0213417001@127.0.0.1>;tag=xss1\r\n'
                "To: <sip:0213417099@127.0.0.77>;tag=xss2\r\n"
                "Call-ID: xss-<b>bold</b>@127.0.0.1\r\n"
                "CSeq: 1 INVITE\r\n"
                f"Server: {XSS_UA}\r\n"
                "Content-Length: 0\r\n\r\n")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as a, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as b:
            a.bind(("127.0.0.1", 0))
            b.bind(("127.0.0.77", 5060))
            a.sendto(invite.encode(), ("127.0.0.77", 5060))
            b.recvfrom(65535)
            b.sendto(busy.encode(), a.getsockname())
        proc.wait(15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0 and path.stat().st_size > 0


def test_markup_in_captured_sip_renders_as_text(browser, base_url, app, indexed, tmp_path):
    from selenium.common.exceptions import NoAlertPresentException
    from selenium.webdriver.common.by import By

    from indexers.es import client

    pcap = tmp_path / "xss.pcap"
    _xss_capture(pcap)
    settings = indexed.settings
    msgs = capture_messages(settings, pcap)
    assert [m.user_agent for m in msgs] == [XSS_UA, XSS_UA]  # the capture path kept it as it was
    index_records(client(settings), settings, msgs + analyze(settings, msgs))

    login(browser, base_url)
    browser.get(f"{base_url}/trace?number=0213417099&last=30m")
    cells = browser.find_elements(By.CSS_SELECTOR, "#results td.ua")
    assert [c.text for c in cells] == [XSS_UA, XSS_UA]
    assert "&lt;script&gt;window.__xss=1;alert(1)&lt;/script&gt;" in browser.page_source
    shot(browser, "07-xss-trace")
    browser.find_element(By.CSS_SELECTOR, "#results td.m a").click()
    arrows = wait_for(browser, "svg.ladder a.arrow")
    assert "xss-<b>bold</b>@127.0.0.1" in browser.find_element(By.CSS_SELECTOR, "h1.callid").text
    assert len(arrows) == 2
    arrows[0].click()
    wait_for(browser, "#m1:target")
    assert XSS_UA in browser.find_element(By.ID, "m1").text
    assert XSS_NAME in browser.find_element(By.ID, "m1").text
    shot(browser, "08-xss-call")
    assert browser.execute_script("return typeof window.__xss") == "undefined"
    assert not browser.find_elements(By.CSS_SELECTOR, "main script, main img")
    with pytest.raises(NoAlertPresentException):
        browser.switch_to.alert.text  # noqa: B018 - raises when no alert() ran
