"""The web page of `seqtool serve` in a real headless browser (Debian's chromium
and chromium-driver, driven by selenium): the test starts the server on tiny
models, opens the page, types, and reads the answers from the page: the top-k
bars, the translation with its attention heat map, and a chat reply, each
checked against the JSON API's answer to the same request."""

from __future__ import annotations

import shutil
import signal
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="the serve extra is not installed")
httpx = pytest.importorskip("httpx", reason="httpx (the test extra) is not installed")
webdriver = pytest.importorskip("selenium.webdriver",
                                reason="selenium (the test extra) is not installed")

from serve_models import ready_line, sources, start_server, train_tiny  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    not (CHROMIUM and DRIVER),
    reason="no chromium and chromedriver (Debian: apt-get install chromium chromium-driver)")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    runs = train_tiny(tmp_path_factory.mktemp("browser"))
    p = start_server(*(f"--model={k}={v}" for k, v in runs.items()))
    try:
        yield ready_line(p)["url"]
    finally:
        p.send_signal(signal.SIGINT)
        p.communicate(timeout=30)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    profile = Path(tmp_path_factory.mktemp("chromium"))
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                f"--user-data-dir={profile}"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(str(DRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def wait_for(driver, condition, timeout: float = 30):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.1).until(lambda d: condition(d))


def test_the_page_predicts_translates_and_chats(server, browser):
    from selenium.webdriver.common.by import By

    browser.get(server + "/")
    wait_for(browser, lambda d: d.find_element(By.TAG_NAME, "body").get_attribute(
        "data-ready") == "1")
    assert "lm" in browser.find_element(By.ID, "status").text

    # next word: the bars are the API's top 10, most probable first
    browser.find_element(By.ID, "predict-input").send_keys("the cat")
    labels = wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR,
                                                         "#predict-bars .bar-label"))
    api = httpx.post(server + "/predict", json={"text": "the cat", "k": 10}).json()
    assert [e.text for e in labels] == [c["token"] for c in api["candidates"]]

    # translation, and one heat-map cell per (target, source) token pair
    source = sources(1, seed=11)[0]
    browser.find_element(By.ID, "translate-input").send_keys(source)
    browser.find_element(By.ID, "translate-button").click()
    wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#heatmap td"))
    api = httpx.post(server + "/translate", json={"text": source, "beam": 5,
                                                  "attention": True}).json()
    assert browser.find_element(By.ID, "translate-output").text == \
        api["translations"][0]["text"]
    att = api["attention"]
    cells = browser.find_elements(By.CSS_SELECTOR, "#heatmap td")
    assert len(cells) == len(att["target_tokens"]) * len(att["source_tokens"])

    # chat: the reply on the page is the one the session keeps
    browser.find_element(By.ID, "chat-input").send_keys("hello there")
    browser.find_element(By.ID, "chat-send").click()
    bot = wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#chat-log .bot"))
    session = browser.execute_script("return session")
    history = httpx.get(f"{server}/chat/sessions/{session}").json()["history"]
    assert history[0] == ["you", "hello there"] and bot[0].text == history[1][1]

    # a bad request shows the API's error message on the page
    browser.find_element(By.ID, "translate-input").clear()
    browser.find_element(By.ID, "translate-input").send_keys(" ")
    browser.find_element(By.ID, "translate-button").click()
    error = wait_for(browser, lambda d: d.find_element(By.ID, "translate-error").text)
    assert "text is empty" in error
