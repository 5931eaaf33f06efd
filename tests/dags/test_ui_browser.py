"""The operator view in a real browser: Playwright driving Debian's Chromium (headless) against
``airflow standalone`` with docpost's plugin installed, on the session's standalone night
(standalone_night.py, shared with test_nightly_standalone.py).

The receipts of the night are settled first by a real ``docpost_receipts`` run (the simulator's
register makes some letters fail), then: log in, open docpost from Airflow's navigation, find a
FAILED letter by its case number and read its timeline, open the night's tab on the
``docpost_nightly`` run, and requeue the letter from there. Screenshots of each step go to
docs/screenshots/ (shown in the README).
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import quote

import pytest
from standalone_night import NIGHTS, Night, standalone_night

from docpost.ledger import Ledger, MessageState

pytestmark = [pytest.mark.slow, pytest.mark.airflow, pytest.mark.integration, pytest.mark.timeout(1800)]

SHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="module")
def settled(request, tmp_path_factory) -> tuple[Night, object]:
    """The standalone night with its receipts settled by a docpost_receipts run; a FAILED letter."""
    night = standalone_night(request, tmp_path_factory)
    with night.airflow.api() as api:
        assert api.request("GET", "/plugins/importErrors")["import_errors"] == []
        plugins = {p["name"]: p for p in api.request("GET", "/plugins")["plugins"]}
        assert {v["url_route"] for v in plugins["docpost"]["external_views"]} == {"docpost", "docpost-night"}
        api.unpause("docpost_receipts")
        run_id = api.trigger("docpost_receipts")
        assert api.wait_for_run("docpost_receipts", run_id, timeout=600, poll=1.0) == "success"
    with Ledger(night.ledger_url) as ledger:
        failed = [m for m in ledger.messages(ledger.message_ids(NIGHTS[0], [MessageState.FAILED])) if m.case_number]
    assert failed, "the register's unknown and exempt recipients fail some letters of night 1"
    return night, failed[0]


@pytest.fixture(scope="module")
def page(settled):
    from playwright.sync_api import sync_playwright

    night, _ = settled
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(90_000)
            page.goto(f"{night.airflow.url}/")
            page.locator("input[name=username]").fill(night.airflow.username)
            page.locator("input[name=password]").fill(night.airflow.password)
            page.get_by_role("button", name="Sign in").click()
            page.wait_for_url(lambda url: "/auth/login" not in url)
            yield page
        finally:
            browser.close()


def no_personal_data(night: Night, html: str) -> None:
    digits = set(re.findall(r"\d{8,10}", html))
    assert not digits & set(night.recipients), "a recipient's clear CPR/CVR on the page"


def docpost_frame(page):  # noqa: ANN001, ANN201
    """The frame showing the docpost view."""
    return next(f for f in page.frames if "/docpost/" in f.url)


def test_find_a_letter_by_case_number_from_the_nav_then_requeue_it_from_the_night_tab(settled, page):
    from playwright.sync_api import expect

    expect.set_options(timeout=90_000)  # a loaded CI machine; Airflow's UI renders the frame late
    night, letter = settled
    # the docpost view from Airflow's navigation: find the letter by its case number
    page.get_by_role("link", name="docpost").click()
    page.wait_for_url("**/plugin/docpost")
    view = page.frame_locator("iframe[title=docpost]")
    view.get_by_label("Message UUID").fill(letter.case_number)
    view.get_by_role("button", name="Search").click()
    view.get_by_role("link", name=letter.message_uuid).click()
    expect(view.get_by_role("heading", name="Timeline")).to_be_visible()
    timeline = view.locator("table.timeline")
    expect(timeline).to_contain_text(f"dag:docpost_nightly/{night.run_id}")  # which run did what
    expect(timeline).to_contain_text("dag:docpost_receipts/")
    expect(view.locator("dl.facts")).to_contain_text(letter.recipient_masked)
    expect(view.locator("dl.facts")).to_contain_text(letter.reason_code)
    no_personal_data(night, docpost_frame(page).content())
    page.screenshot(path=str(SHOTS / "letter-timeline.png"))

    # the night's tab on the docpost_nightly run that handled it
    page.goto(f"{night.airflow.url}/dags/docpost_nightly/runs/{quote(night.run_id, safe='')}")
    page.get_by_role("link", name="Letters of this night").click()
    tab = page.frame_locator("iframe[title='Letters of this night']")
    expect(tab.get_by_role("heading", level=1)).to_contain_text(f"Night {NIGHTS[0].isoformat()}")
    expect(tab.locator("figure.chart svg").first).to_be_visible()
    expect(tab.locator("#rejected")).to_be_visible()
    no_personal_data(night, docpost_frame(page).content())
    page.screenshot(path=str(SHOTS / "night-tab.png"), full_page=True)

    # requeue the FAILED letter from the night's list, confirmed
    tab.locator("table.letters").first.get_by_role("link", name=letter.message_uuid).click()
    tab.get_by_role("link", name="Requeue…").click()
    tab.get_by_label("Reason").fill("modtageren har fået Digital Post")
    tab.get_by_role("button", name="Confirm: requeue").click()
    expect(tab.get_by_role("status")).to_contain_text("requeued")
    expect(tab.locator("table.timeline")).to_contain_text("airflow-ui:admin")
    page.screenshot(path=str(SHOTS / "requeued.png"))
    with Ledger(night.ledger_url) as ledger:
        now = ledger.get(letter.message_uuid)
        event = ledger.history(now.id)[-1]
    assert now.state is MessageState.STAMPED and now.generation == letter.generation + 1
    assert event.actor == "airflow-ui:admin" and "modtageren har fået Digital Post" in event.detail

    # the month per department, for the screenshot in the README
    tab.get_by_role("link", name="Departments").click()
    tab.get_by_label("Month").fill(NIGHTS[0].strftime("%Y-%m"))
    tab.get_by_role("button", name="Show").click()
    expect(tab.get_by_role("heading", level=1)).to_contain_text(NIGHTS[0].strftime("%Y-%m"))
    expect(tab.locator("table.counts")).to_contain_text("Borgerservice")
    page.screenshot(path=str(SHOTS / "departments.png"), full_page=True)
