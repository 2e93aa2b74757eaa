"""The hall board, the language switch and the accessibility basics of every page, in headless
Chromium over real HTTP (citycode serve); each page is photographed in Chinese and English."""
from __future__ import annotations

from typing import Any

from tests.helpers import bearer, code, credential, enrol, issuer, terminal
from tests.web.support import AUDIT, Site, photograph, sign_in

def test_the_board_shows_a_called_number_at_its_counter_highlighted_and_updates_the_waiting_counts(
        site: Site, browse: Any) -> None:
    page = browse(mobile=False)  # a hall no other test uses: the service is shared by the session
    page.goto(site.url("/halls/shibei/board"))
    page.wait_for_selector("td[data-service=household]:has-text('0')")
    assert page.is_visible("#none-calling")

    kiosk = bearer(terminal(site.client, "hall", hall="shibei"))
    taken = site.client.post("/v1/halls/shibei/tickets", headers=kiosk, json={
        "code": code(site.client, enrol(site.client)["app_token"]), "service": "household"})
    assert taken.status_code == 201, taken.get_json()
    ticket = taken.get_json()["ticket"]
    page.wait_for_selector("td[data-service=household]:has-text('1')")
    assert site.client.post("/v1/halls/shibei/call", headers=kiosk, json={"counter": "2"}).status_code == 403

    counter = bearer(terminal(site.client, "hall", hall="shibei", counter="2"))
    called = site.client.post("/v1/halls/shibei/call", headers=counter, json={"counter": "2"})
    assert called.status_code == 200 and called.get_json()["ticket"] == ticket
    shown = page.locator(f'li.call[data-ticket="{ticket}"][data-counter="2"]')
    shown.wait_for()
    assert shown.inner_text().split() == [ticket, "2", "号窗口"]
    assert "new" in (shown.get_attribute("class") or "")  # the visual highlight of a new call
    page.wait_for_selector("td[data-service=household]:has-text('0')")
    assert page.is_hidden("#none-calling")


def test_the_language_switch_turns_the_pages_english_and_is_remembered(site: Site, browse: Any) -> None:
    page = browse(locale="zh-CN")
    page.goto(site.url("/"))
    assert page.get_attribute("html", "lang") == "zh-CN" and page.title() == "一码通城"
    page.click("#lang-en")
    page.wait_for_selector("html[lang=en]")
    assert page.locator("h1").inner_text() == "One code for the whole city"
    page.goto(site.url("/app"))
    assert page.get_attribute("html", "lang") == "en"
    page.get_by_role("button", name="Sign in").wait_for()
    page.click("#lang-zh")
    page.wait_for_selector("html[lang=zh-CN]")
    page.get_by_role("button", name="登录").wait_for()


def _a_day_of_data(site: Site) -> str:
    """A citizen with credentials, a bus ride, a waiting disclosure request; a hall with a call."""
    citizen = enrol(site.client, name="王小明")
    school = issuer(site.client, "student_card")
    police = issuer(site.client, "id_card", name="青岛市公安局")
    credential(site.client, school, citizen["citizen_id"], "student_card", number="QD2026S0042")
    credential(site.client, police, citizen["citizen_id"], "id_card", number="370202199001011234")
    app_token = citizen["app_token"]
    bus = bearer(terminal(site.client, "bus"))
    ride = site.client.post("/v1/verify", headers=bus, json={"code": code(site.client, app_token)})
    assert ride.get_json()["decision"] == "accept"
    site.recorded(app_token)
    officer = bearer(terminal(site.client, "hall", hall="city", counter="3"))
    assert site.client.post("/v1/disclosures", headers=officer, json={
        "code": code(site.client, app_token), "credential_types": ["id_card"], "purpose": "办理居住证",
        "fields": ["id_card.holder.name", "id_card.number"]}).status_code == 201
    kiosk = bearer(terminal(site.client, "hall", hall="city"))
    for service in ("household", "household", "social_security"):
        other = enrol(site.client)["app_token"]
        taken = site.client.post("/v1/halls/city/tickets", headers=kiosk,
                                 json={"code": code(site.client, other), "service": service})
        assert taken.status_code == 201
    counter = bearer(terminal(site.client, "hall", hall="city", counter="1"))
    assert site.client.post("/v1/halls/city/call", headers=counter, json={"counter": "1"}).status_code == 200
    return app_token


def test_every_page_in_both_languages_has_a_title_lang_named_controls_and_readable_contrast(
        site: Site, browse: Any) -> None:
    app_token = _a_day_of_data(site)
    for lang, locale, heading in (("zh", "zh-CN", "一码通城"),
                                  ("en", "en-GB", "One code for the whole city")):
        page = browse(locale=locale)
        page.goto(site.url("/"))
        assert page.locator("h1").inner_text() == heading
        assert page.evaluate(AUDIT) == []
        photograph(page, site, f"landing-{lang}")
        if lang == "zh":  # the audit itself sees what it is for
            page.evaluate("""() => {
                const faint = document.createElement('p'); faint.textContent = 'faint'; faint.style.color = '#bbb';
                document.querySelector('main').append(faint, document.createElement('button'));
            }""")
            found = page.evaluate(AUDIT)
            assert any(p.startswith("contrast") and "faint" in p for p in found)
            assert any(p.startswith("no accessible name: <button") for p in found)

        page.goto(site.url("/app"))
        page.wait_for_selector("#signin:visible")
        assert page.evaluate(AUDIT) == []
        sign_in(page, site, app_token)
        page.wait_for_selector("li.request")
        page.wait_for_selector("#history li:not(.quiet)")
        page.wait_for_selector('#device[data-ready="sealed"]')  # offline codes ready on this phone
        assert page.get_attribute("html", "lang") == {"zh": "zh-CN", "en": "en"}[lang]
        assert page.evaluate(AUDIT) == []
        photograph(page, site, f"app-{lang}")

        board = browse(locale=locale, mobile=False)
        board.goto(site.url("/halls/city/board"))
        board.wait_for_selector("li.call")
        board.wait_for_timeout(200)
        assert board.evaluate(AUDIT) == []
        photograph(board, site, f"board-{lang}")
