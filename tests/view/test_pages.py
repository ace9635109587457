"""The pages in a real browser (headless Chromium through selenium): table, frames by index, plots, scrubbing, run.

A missing Chromium fails these tests; ROBOLEARN_SKIP_BROWSER=1 skips them (see conftest.browser)."""

import time

import cv2
import numpy as np
import pytest

from robolearn.store import Store
from tests.view.conftest import FEATURES, LENGTHS, TASKS, episode, frame_colour


def wait_for(driver, script: str, timeout_s: float = 15.0):
    """Poll a JS expression until it is truthy; return its value (bounded: fails after timeout_s)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = driver.execute_script(f"return ({script});")
        if value:
            return value
        time.sleep(0.03)
    errors = [e["message"] for e in driver.get_log("browser")] if hasattr(driver, "get_log") else []
    pytest.fail(f"timed out waiting for {script!r}; browser log: {errors}")


def canvas_pixels(driver, key: str) -> np.ndarray:
    """The (H, W, 3) RGB pixels the page's canvas for `key` shows."""
    h, w, flat = driver.execute_script(
        "const c = document.querySelector(`canvas[data-key='${arguments[0]}']`);"
        "const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
        "return [c.height, c.width, Array.from(d)];", key)
    return np.array(flat, np.uint8).reshape(h, w, 4)[..., :3]


def test_store_table_lists_the_episodes(browser, view_server):
    browser.get(view_server.url + "/store")
    wait_for(browser, "window.RV_STORE && window.RV_STORE.tableMs")
    rows = browser.execute_script("return Array.from(document.querySelectorAll('#episodes .body .row'))"
                                  ".map(tr => Array.from(tr.children).map(td => td.textContent))")
    head = browser.execute_script("return Array.from(document.querySelectorAll('#episodes .head > div')).map(th => th.textContent)")
    col = {name: i for i, name in enumerate(head)}
    assert len(rows) == 3 and [r[col["#"]] for r in rows] == ["0", "1", "2"]
    assert [r[col["length"]] for r in rows] == [str(n) for n in LENGTHS]
    assert [r[col["task"]] for r in rows] == list(TASKS)
    assert [r[col["success"]] for r in rows] == ["yes", "no", "yes"]
    assert [r[col["status"]] for r in rows] == ["ok", "ok", "truncated"]
    assert [r[col["dropped"]] for r in rows] == ["0", "3", "0"] and [r[col["source"]] for r in rows] == ["expert", "expert", "teleop"]
    assert [r[col["achieved fps"]] for r in rows] == ["9.5", "9.7", "9.9"]
    browser.find_element("css selector", "#episodes .head [data-key='length']").click()
    browser.find_element("css selector", "#episodes .head [data-key='length']").click()  # descending
    order = browser.execute_script("return Array.from(document.querySelectorAll('#episodes .row')).map(tr => tr.dataset.ep)")
    assert order == ["2", "0", "1"]
    browser.find_element("id", "f-text").send_keys("drawer")
    shown = browser.execute_script("return Array.from(document.querySelectorAll('#episodes .row')).map(tr => tr.dataset.ep)")
    assert shown == ["1"] and browser.find_element("id", "shown").text == "1 of 3"
    wait_for(browser, "window.RV_STATS")  # statistics and histograms arrive after the table
    assert len(browser.find_elements("css selector", ".hists[data-key='state'] canvas")) == 3
    browser.find_element("css selector", "#episodes .row[data-ep='1']").click()  # a row opens its episode
    wait_for(browser, "location.pathname === '/episode/1' && window.RV && RV.ready")


def test_episode_frame_by_index_plots_and_scrubbing(browser, view_server, view_store):
    browser.get(view_server.url + "/episode/1?frame=5")
    wait_for(browser, "window.RV && RV.ready && RV.drawn['images/front'] === 5 && RV.drawn['images/wrist'] === 5")
    frames = episode(1, LENGTHS[1])[0]
    front = canvas_pixels(browser, "images/front")  # lossless store: the exact stored frame
    np.testing.assert_array_equal(front, frames["images/front"][5])
    assert tuple(front[10, 12]) == frame_colour(1, 5) and tuple(front[0, 0]) == (255, 255, 255)
    wrist = canvas_pixels(browser, "images/wrist").astype(int)  # JPEG: the stored frame within JPEG tolerance
    assert np.abs(wrist - frames["images/wrist"][5]).max() <= 6
    store = Store.open(view_store)
    i = int(store.episode_starts[1]) + 5
    jpeg = cv2.imdecode(np.frombuffer(store.chunk_bytes("images/wrist", i, i + 1)[0], np.uint8), cv2.IMREAD_COLOR)[..., ::-1]
    assert np.abs(wrist - jpeg.astype(int)).max() <= 2  # the very stored JPEG, decoded by the browser
    # every low-dim stream plotted with one point per frame; applied and commanded action in one chart
    points = browser.execute_script("return Object.fromEntries(Object.entries(RV.plots).map(([k, u]) => [k, u.data.map(s => s.length)]))")
    assert points["state"] == [9, 9, 9, 9] and points["force"] == [9] * 7 and points["reward"] == [9, 9]
    assert points["action"] == [9] * 5 and points["timing"] == [9, 9] and points["dt"] == [8] * (1 + len(FEATURES))
    state0 = browser.execute_script("return RV.plots.state.data[1]")
    np.testing.assert_allclose(state0, frames["state"][:, 0])
    # scrubbing with the mouse moves the cursor, the plots' cursor line and the frame
    line_before = browser.execute_script("return RV.plots.state.root.querySelector('.cursorline').style.left")
    scrubber = browser.find_element("id", "scrubber")
    from selenium.webdriver.common.action_chains import ActionChains

    width = scrubber.size["width"]
    ActionChains(browser).move_to_element_with_offset(scrubber, width // 2 - 3, 0).click().perform()
    cursor = wait_for(browser, "RV.cursor !== 5 && RV.drawn['images/front'] === RV.cursor && RV.cursor")
    assert 7 <= cursor <= 8  # the far right of the bar is frame 8
    assert browser.execute_script("return RV.plots.state.root.querySelector('.cursorline').style.left") != line_before
    assert tuple(canvas_pixels(browser, "images/front")[10, 12]) == frame_colour(1, cursor)
    assert browser.find_element("id", "pos").text.startswith(f"frame {cursor} / 8")
    # keys: a frame back, then the next episode
    browser.find_element("tag name", "body").send_keys("\ue012")  # ArrowLeft
    wait_for(browser, f"RV.cursor === {cursor - 1} && RV.drawn['images/front'] === {cursor - 1}")
    browser.find_element("tag name", "body").send_keys("]")
    wait_for(browser, "location.pathname === '/episode/2' && window.RV && RV.ready")
    assert browser.execute_script("return RV.d.length") == LENGTHS[2]


def test_playback_steps_through_every_frame_in_sync(browser, view_server):
    browser.get(view_server.url + "/episode/0")
    wait_for(browser, "window.RV && RV.ready && RV.drawn['images/front'] === 0")
    last = LENGTHS[0] - 1
    browser.execute_script("document.getElementById('speed').value = '4'; document.getElementById('speed')"
                           ".dispatchEvent(new Event('input')); window.seen = []; const f = () => {"
                           "seen.push([RV.drawn['images/front'], RV.drawn['images/wrist'], RV.drawn['depth/front']]);"
                           "if (seen[seen.length - 1].some(v => v !== arguments[0])) requestAnimationFrame(f); };"
                           "requestAnimationFrame(f);", last)
    browser.find_element("id", "play").click()
    wait_for(browser, f"!RV.playing && RV.cursor === {last} && seen[seen.length - 1].every(v => v === {last})", timeout_s=20)
    seen = browser.execute_script("return seen")
    assert [s[0] for s in seen if s[0] == s[1] == s[2]][-1] == last
    assert sorted(set(s[0] for s in seen)) == list(range(last + 1))  # every frame shown, in order, none skipped
    assert all(b[0] >= a[0] for a, b in zip(seen, seen[1:]))
    lag = max(max(s) - min(s) for s in seen)
    assert lag <= 1  # the cameras never drift apart by more than the frame being drawn


def test_run_page_shows_curves_and_episode_videos(browser, view_server):
    browser.get(view_server.url + "/run")
    wait_for(browser, "window.RV_RUN && RV_RUN.ready")
    loss = browser.execute_script("return RV_RUN.plots.loss.data")
    assert loss[0] == list(range(5, 55, 5)) and len(loss) == 3  # steps, loss, val_loss
    np.testing.assert_allclose(loss[1], [1.0 / s for s in range(5, 55, 5)])
    assert loss[2][4] == 0.5 and loss[2][9] == 0.1 and loss[2][0] is None
    assert set(browser.execute_script("return Object.keys(RV_RUN.plots)")) == {"loss", "lr", "samples_per_s"}
    cells = browser.execute_script("return Array.from(document.querySelectorAll('.eval-episodes tbody tr'))"
                                   ".map(tr => tr.cells[2].textContent)")
    assert cells == ["yes", "no", "yes"]
    video = browser.find_element("css selector", ".evaluation video")
    assert video.get_attribute("src").endswith("/api/run/file/eval/rollouts/episode_0.mp4")
    browser.find_element("css selector", ".eval-episodes tr[data-episode='1']").click()
    assert video.get_attribute("src").endswith("/episode_1.mp4")
    assert wait_for(browser, "document.querySelector('.evaluation video').readyState >= 1 && "
                             "document.querySelector('.evaluation video').duration") > 0  # it loads and plays
    assert "diffusion" in browser.find_element("id", "config").text
