"""The support-desk page in a real headless Chromium (Debian's chromium + chromium-driver, driven by
Selenium; nothing downloads a browser): a real Scientific shopper with justifications streamed from
the real vLLM, hover-to-highlight, "not helpful" landing in the store, and "like <item> but cheaper"
on the priced catalog. Screenshots and the measured timings go to test-output/desk/."""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from tests.fixtures_desk import start_desk

CHROMIUM, DRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
OUT = Path(__file__).resolve().parent.parent / "test-output" / "desk"
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not (os.path.exists(CHROMIUM) and os.path.exists(DRIVER)),
                                 reason="Debian chromium / chromium-driver not installed (scripts/setup.sh installs them)")]


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    os.environ["SE_OFFLINE"] = "true"      # Selenium Manager must not fetch a browser or driver
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    # the flags that work on a closed network (no background connections to Google's hosts)
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--window-size=1400,1000",
                 f"--user-data-dir={tmp_path_factory.mktemp('chromium')}"):
        opts.add_argument(flag)
    driver = webdriver.Chrome(service=Service(DRIVER), options=opts)
    driver.set_page_load_timeout(60)
    OUT.mkdir(parents=True, exist_ok=True)
    yield driver
    driver.quit()


def _wait(driver, condition, timeout: float, what: str):
    from selenium.webdriver.support.ui import WebDriverWait
    return WebDriverWait(driver, timeout, poll_frequency=0.05).until(condition, message=f"waiting for {what}")


def _lookup(driver, url: str, user: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    driver.get(url)
    box = driver.find_element(By.ID, "user")
    box.send_keys(user, Keys.ENTER)           # keyboard only: Enter submits the lookup


@pytest.mark.vllm
def test_scientific_shopper_streamed_highlight_and_feedback(browser, llm_server, server_catalog, some_user):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    desk = start_desk(llm_server)
    try:
        _lookup(browser, desk.url, some_user)
        _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#history-list li"), 60, "the history")
        recs = _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#rec-list li.rec"), 60, "the ranked list")
        history_ids = [li.get_attribute("data-item-id") for li in browser.find_elements(By.CSS_SELECTOR, "#history-list li")]
        assert history_ids[0] == server_catalog.recent_events(some_user, 1)[0][0].item_id   # newest first
        _wait(browser, lambda d: d.execute_script("return window.deskTimings.first_word_s"), 300, "the first streamed word")
        _wait(browser, lambda d: not d.find_elements(By.CSS_SELECTOR, ".justification.pending"), 600, "every justification")
        timings = browser.execute_script("return Object.assign({}, window.deskTimings)")
        texts = [r.find_element(By.CSS_SELECTOR, ".justification .text").text for r in recs]
        assert all(texts), texts

        # hovering a justification highlights the history item it cites, and marks shared attributes
        rec = next(r for r in recs if "Cites:" in r.find_element(By.CSS_SELECTOR, ".cites").text)
        ActionChains(browser).move_to_element(rec.find_element(By.CSS_SELECTOR, ".justification")).perform()
        cited = _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#history-list li.cited"), 5, "a highlight")
        assert len(cited) == 1 and cited[0].get_attribute("aria-current") == "true"
        cited_id = cited[0].get_attribute("data-item-id")
        shared = browser.find_elements(By.CSS_SELECTOR, "#history-list li.cited .attr.shared")
        time.sleep(0.2)
        browser.save_screenshot(str(OUT / "scientific_hover.png"))
        ActionChains(browser).move_to_element(browser.find_element(By.TAG_NAME, "h1")).perform()
        _wait(browser, lambda d: not d.find_elements(By.CSS_SELECTOR, "#history-list li.cited"), 5, "the highlight to clear")
        # the same by keyboard: Tab from the shopper box to the justification highlights the cited item
        target = rec.find_element(By.CSS_SELECTOR, ".justification").get_attribute("id")
        browser.find_element(By.ID, "user").click()
        for _ in range(80):
            browser.switch_to.active_element.send_keys(Keys.TAB)
            if browser.switch_to.active_element.get_attribute("id") == target:
                break
        assert browser.switch_to.active_element.get_attribute("id") == target
        assert browser.find_element(By.CSS_SELECTOR, "#history-list li.cited").get_attribute("data-item-id") == cited_id
        browser.switch_to.active_element.send_keys(Keys.TAB)
        assert browser.switch_to.active_element.text == "Helpful"

        # "not helpful" is stored by SubmitFeedback
        item_id = rec.get_attribute("data-item-id")
        rec.find_element(By.XPATH, ".//button[normalize-space()='Not helpful']").click()
        status = _wait(browser, lambda d: rec.find_element(By.CSS_SELECTOR, ".fb-status").get_attribute("data-feedback-id"),
                       30, "the feedback to be recorded")
        row = next(f for f in server_catalog.feedback(some_user) if f["id"] == int(status))
        assert (row["item_id"], row["kind"], row["helpful"]) == (item_id, "rating", 0)
        assert "Recorded" in rec.find_element(By.CSS_SELECTOR, ".fb-status").text
        browser.save_screenshot(str(OUT / "scientific_feedback.png"))
        csv = browser.execute_script("return window.deskCsv()")
        assert csv.count("\r\n") == len(recs) + 1 and item_id in csv
    finally:
        llm_server.run(desk.stop())
    timings.update(user=some_user, items=len(recs), shared_marks=len(shared), cited=cited_id)
    (OUT / "timings.json").write_text(json.dumps(timings, indent=1))
    print(f"desk page with the local LLM: ranked list {timings['ranked_s']:.2f} s, first streamed word "
          f"{timings['first_word_s']:.2f} s, first verified justification {timings['first_final_s']:.2f} s, "
          f"all {len(recs)} justified {timings['all_final_s']:.2f} s after the lookup")


def test_like_item_but_cheaper_on_priced_catalog(browser, priced_desk, priced_catalog):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    ref = max((i for i in priced_catalog.all_items() if i.price is not None and "Tent" in i.title),
              key=lambda i: i.price)
    browser.get(priced_desk.url)
    browser.find_element(By.ID, "search-text").send_keys(f"like {ref.id} but cheaper", Keys.ENTER)
    recs = _wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#rec-list li.rec"), 60, "the ranked list")
    _wait(browser, lambda d: not d.find_elements(By.CSS_SELECTOR, ".justification.pending"), 60, "justifications")
    prices = {r.get_attribute("data-item-id"): priced_catalog.get_item(r.get_attribute("data-item-id")).price for r in recs}
    assert len(prices) >= 5 and ref.id not in prices
    assert all(p is not None and p < ref.price for p in prices.values()), (ref.price, prices)
    shown = [r.find_element(By.CSS_SELECTOR, ".price").text for r in recs]
    assert all(s.startswith("$") and float(s[1:].replace(",", "")) < ref.price for s in shown), shown
    assert "like" in browser.find_element(By.ID, "filters").text
    browser.save_screenshot(str(OUT / "priced_cheaper.png"))

    # screen readers: every form control has a label, every justification says what it justifies
    unlabelled = browser.execute_script(
        "return [...document.querySelectorAll('input, button')].filter(e => !e.labels?.length "
        "&& !e.getAttribute('aria-label') && !e.textContent.trim()).map(e => e.id || e.outerHTML)")
    assert unlabelled == []
    assert all(j.get_attribute("aria-label").startswith("Why ") for j in browser.find_elements(By.CSS_SELECTOR, ".justification"))
    # keyboard: Tab from the search box reaches the first justification and then its buttons
    browser.find_element(By.ID, "search-text").click()
    for _ in range(40):
        browser.switch_to.active_element.send_keys(Keys.TAB)
        if "justification" in (browser.switch_to.active_element.get_attribute("class") or ""):
            break
    assert "justification" in browser.switch_to.active_element.get_attribute("class")
    first = browser.switch_to.active_element
    assert first.get_attribute("id") == "just-1"
    # no shopper looked up: the feedback buttons are disabled (and say why), so Tab goes to the next item
    buttons = recs[0].find_elements(By.CSS_SELECTOR, "button.fb")
    assert all(not b.is_enabled() and "shopper" in b.get_attribute("title") for b in buttons)
    first.send_keys(Keys.TAB)
    assert browser.switch_to.active_element.get_attribute("id") == "just-2"
