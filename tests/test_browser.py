"""The recording page end to end in headless Chromium (Debian `chromium` + `chromium-driver`,
driven by selenium): upload a real utterance and read the rendered scores; record from a fake
microphone so the in-page WAV encoder is exercised too. Skips when Chromium is absent."""

from __future__ import annotations

import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pronscore.scorer import Scorer
from pronscore.server.app import ServerConfig, create_app

UTT = "WAVE/SPEAKER0001/000010011.flac"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--use-fake-device-for-media-stream",  # a synthetic microphone ...
    "--use-fake-ui-for-media-stream",  # ... granted without a prompt
    "--autoplay-policy=no-user-gesture-required",
)

pytestmark = pytest.mark.skipif(
    CHROMIUM is None or CHROMEDRIVER is None,
    reason="headless Chromium not installed (apt-get install -y chromium chromium-driver)",
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    import uvicorn

    app = create_app(ServerConfig(), scorer=Scorer.from_pretrained("default"))
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("uvicorn did not start")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium not installed")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    profile = tempfile.mkdtemp(prefix="pronscore-chromium-")
    for flag in (*FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def _wait(driver, condition, timeout: float = 60.0):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.2).until(condition)


def _open(driver, base_url: str) -> None:
    driver.get(base_url + "/")
    _wait(driver, lambda d: d.execute_script("return document.body.dataset.ready === '1'"))


def _rendered(driver) -> dict:
    return driver.execute_script(
        """
        const r = document.getElementById('result');
        return {
          status: r.dataset.status,
          scores: Object.fromEntries([...document.querySelectorAll('#utterance .score')]
                    .map(e => [e.dataset.aspect, e.textContent])),
          words: [...document.querySelectorAll('#words .word .text')].map(e => e.textContent),
          phones: [...document.querySelectorAll('#words .phone')].map(e => e.dataset.score),
          colours: [...document.querySelectorAll('#words .phone')]
                    .map(e => getComputedStyle(e).backgroundColor),
          message: document.getElementById('message').textContent,
          reason: document.getElementById('reason').textContent,
          fromWords: document.getElementById('from-words').hidden ? null
                     : document.getElementById('from-words').textContent,
        };"""
    )


def _submit_and_read(driver) -> dict:
    from selenium.webdriver.common.by import By

    driver.find_element(By.ID, "submit").click()
    _wait(driver, lambda d: d.find_element(By.ID, "result").get_attribute("data-status"))
    return _rendered(driver)


@pytest.mark.realdata
def test_upload_a_real_utterance_and_read_the_scores(
    browser, base_url: str, corpus_dir: Path
) -> None:
    from selenium.webdriver.common.by import By

    _open(browser, base_url)
    picks = browser.execute_script(
        "return [...document.querySelectorAll('#sentences option')].map(o => o.value)"
    )
    assert "We call it bear" in picks
    browser.find_element(By.ID, "text").send_keys("We call it bear")
    browser.find_element(By.ID, "file").send_keys(str(corpus_dir / UTT))
    page = _submit_and_read(browser)
    assert page["status"] == "ok", page
    assert set(page["scores"]) == {"accuracy", "completeness", "fluency", "prosodic", "total"}
    assert all(0.0 <= float(v) <= 10.0 for v in page["scores"].values())
    assert page["words"] == ["we", "call", "it", "bear"]
    assert len(page["phones"]) == 10 and all(0.0 <= float(s) <= 2.0 for s in page["phones"])
    assert all(c.startswith("rgb(") for c in page["colours"])  # coloured by score
    assert page["message"] == "Done."
    # why the sentence sits below its words, from the shipped model's words-to-sentence line
    assert page["fromWords"].startswith("From the words alone the sentence gets ")
    assert "(experts rate a sentence below its words)" in page["fromWords"]


def test_record_from_the_microphone_and_score(browser, base_url: str) -> None:
    from selenium.webdriver.common.by import By

    _open(browser, base_url)
    browser.find_element(By.ID, "text").send_keys("We call it bear")
    browser.find_element(By.ID, "record").click()
    _wait(browser, lambda d: "Stop" in d.find_element(By.ID, "record").text, 15)
    time.sleep(1.5)
    browser.find_element(By.ID, "record").click()
    _wait(browser, lambda d: d.find_element(By.ID, "rec-time").get_attribute("data-samples"), 15)
    samples = int(browser.find_element(By.ID, "rec-time").get_attribute("data-samples"))
    assert 16_000 <= samples <= 16_000 * 4  # ~1.5 s at 16 kHz, encoded in the page
    page = _submit_and_read(browser)  # a fake microphone beeps: none of the words is heard
    assert page["status"] == "mismatch", page
    assert page["reason"].startswith("Could not score: ") and "none of the text" in page["reason"]
    assert page["message"] == "Scored with problems — see the note."
    assert set(page["scores"].values()) == {"0.0"} and page["words"] == ["we", "call", "it", "bear"]


def test_errors_are_shown_on_the_page(browser, base_url: str, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"this is not audio")
    _open(browser, base_url)
    browser.find_element(By.ID, "text").send_keys("We call it bear")
    browser.find_element(By.ID, "file").send_keys(str(bad))
    browser.find_element(By.ID, "submit").click()
    _wait(browser, lambda d: "cannot decode" in d.find_element(By.ID, "message").text, 30)
    assert "error" in browser.find_element(By.ID, "message").get_attribute("class")
