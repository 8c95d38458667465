"""A real browser against the viewer: headless Chromium driven by Selenium, on a uvicorn server on a free loopback port.

It logs in, opens a run and an episode, rates a turn, writes a critique,
labels a pair, reloads and finds the labels, exports them and loads the
export with `datasets`, and checks that an episode full of markup renders as
text. It takes screenshots of the episode page and the labelling (pair)
page: into docs/viewer-episode.png and docs/viewer-pair.png with
LONGHORIZON_UPDATE_SCREENSHOTS=1 (how the committed ones were made), else
into the test's temporary directory, so a test run leaves the checkout clean.
Skipped (with the reason) where Chromium, chromedriver or selenium is missing;
`.ci/run` installs Debian's `chromium` and `chromium-driver`.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest

from longhorizon.ui.demo import HOSTILE, write_demo_runs

DOCS = Path(__file__).resolve().parents[1] / "docs"
UPDATE_SCREENSHOTS = os.environ.get("LONGHORIZON_UPDATE_SCREENSHOTS") == "1"
TOKEN = "browser-test-token-0123456789"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")

if not (CHROMIUM and CHROMEDRIVER):
    pytest.skip("headless Chromium not found (needs Debian's chromium and chromium-driver: "
                "apt-get install -y chromium chromium-driver; .ci/run installs them)", allow_module_level=True)
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install selenium)")
from selenium.common.exceptions import NoAlertPresentException  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    import uvicorn

    from longhorizon.ui.app import make_app

    root = write_demo_runs(tmp_path_factory.mktemp("runs"))
    port = free_port()
    srv = uvicorn.Server(uvicorn.Config(make_app(root, TOKEN), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not srv.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert srv.started, "uvicorn did not start"
    yield f"http://127.0.0.1:{port}", root
    srv.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    os.environ.setdefault("SE_OFFLINE", "true")  # Selenium Manager must not try to download anything
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run",
                "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage", "--window-size=1400,1700",
                f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=webdriver.ChromeService(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


def texts(driver, css: str) -> list[str]:
    return [el.text for el in driver.find_elements(By.CSS_SELECTOR, css)]


def wait_for_text(driver, css: str, text: str, timeout: float = 15) -> list[str]:
    """Wait until an element matching `css` contains `text` (a form post redirects back; the click may return first)."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, timeout, ignored_exceptions=(StaleElementReferenceException,)).until(
        lambda d: any(text in t for t in texts(d, css)))
    return texts(driver, css)


def test_browse_label_reload_export(server, browser, tmp_path):
    url, root = server
    shots = DOCS if UPDATE_SCREENSHOTS else tmp_path
    browser.get(url + "/")
    assert "/login" in browser.current_url  # reads need the token
    browser.find_element(By.NAME, "token").send_keys(TOKEN)
    browser.find_element(By.NAME, "annotator").send_keys("ana")
    browser.find_element(By.CSS_SELECTOR, "form.login button").click()
    wait_for_text(browser, "header.top .who", "labelling as ana")

    browser.find_element(By.LINK_TEXT, "eval-demo").click()  # open a run
    wait_for_text(browser, "h1", "6 episodes")
    browser.find_element(By.LINK_TEXT, "trajectories.jsonl#1").click()  # open an episode (it slips at turn 1)
    wait_for_text(browser, "h1", "Episode trajectories.jsonl#1")
    assert len(browser.find_elements(By.CSS_SELECTOR, "section.turn")) == 3
    assert browser.find_elements(By.CSS_SELECTOR, ".heat .tok.lp0")  # the slip's low-probability token is red

    browser.find_element(By.CSS_SELECTOR, "#turn-1 form.rate-form button.mistake").click()  # rate a turn
    wait_for_text(browser, "#turn-1 li.label", "first mistake")
    browser.find_element(By.CSS_SELECTOR, "#episode-critique textarea").send_keys("Added 6 instead of 5 at step 2.")
    browser.find_element(By.CSS_SELECTOR, "#episode-critique button").click()  # critique the episode
    wait_for_text(browser, "section.labels li.label", "Added 6 instead of 5 at step 2.")
    browser.find_element(By.CSS_SELECTOR, "#turn-1 details summary").click()  # show the decoded prompt
    prompt = browser.find_element(By.CSS_SELECTOR, "#turn-1 pre.prompt").get_attribute("textContent")
    assert prompt.startswith("Step 1: add 3") and "<answer>3</answer>" in prompt  # the full history, decoded
    assert browser.save_screenshot(str(shots / "viewer-episode.png"))

    browser.find_element(By.PARTIAL_LINK_TEXT, "trajectories.jsonl#0").click()  # the pair page: #1 against #0
    wait_for_text(browser, "h1", "Which episode is better?")
    assert len(browser.find_elements(By.CSS_SELECTOR, ".side")) == 2
    browser.find_element(By.CSS_SELECTOR, "form.pair-form textarea").send_keys("B never slips.")
    assert browser.save_screenshot(str(shots / "viewer-pair.png"))
    browser.find_element(By.ID, "prefer-b").click()  # label the pair
    wait_for_text(browser, "li.label-preference", "B never slips.")

    browser.get(url + "/episode?run=eval-demo&src=trajectories.jsonl&i=1")  # reload: the labels are there
    wait_for_text(browser, "h1", "Episode trajectories.jsonl#1")
    labels = texts(browser, "section.labels li.label")
    assert any("FIRST MISTAKE" in t.upper() and "turn 1" in t and "ana" in t for t in labels), labels
    assert any("Added 6 instead of 5 at step 2." in t for t in labels), labels
    assert any("PREFERENCE" in t.upper() for t in labels), labels
    assert any("first mistake" in t for t in texts(browser, "#turn-1 li.label"))

    export_and_load(root, tmp_path)


def export_and_load(root: Path, tmp_path: Path) -> None:
    from datasets import load_from_disk

    from longhorizon.store.feedback_export import export_feedback

    export_feedback(root, tmp_path / "export")
    prefs = load_from_disk(str(tmp_path / "export" / "preferences"))
    assert prefs.num_rows == 1 and prefs[0]["chosen_episode"] == "trajectories.jsonl#0"
    assert prefs[0]["rejected"][2]["content"] == "<answer>9</answer>" and prefs[0]["annotator"] == "ana"
    crits = load_from_disk(str(tmp_path / "export" / "critiques"))
    assert sorted(crits["kind"]) == ["critique", "turn_rating"]
    rating = crits[crits["kind"].index("turn_rating")]
    assert (rating["rating"], rating["turn"], rating["label"]) == ("first_mistake", 1, False)


def test_markup_in_an_episode_renders_as_text(server, browser):
    url, _ = server
    browser.get(f"{url}/?token={TOKEN}")
    browser.get(url + "/episode?run=eval-demo&src=trajectories.jsonl&i=4")
    with pytest.raises(NoAlertPresentException):
        browser.switch_to.alert.text
    assert not browser.find_elements(By.TAG_NAME, "script") and not browser.find_elements(By.TAG_NAME, "img")
    for css in ("pre.obs", "pre.action", "pre.reply"):
        element = browser.find_element(By.CSS_SELECTOR, css)
        assert HOSTILE in element.text  # shown literally, character for character
        assert not element.find_elements(By.XPATH, ".//*")  # and nothing inside became an element
    assert browser.find_elements(By.CSS_SELECTOR, "section.turn")  # the page after the markup still rendered
