"""The citizen page in headless Chromium, over real HTTP (citycode serve): sign in, show a code a
reader accepts, refresh it, answer disclosure requests, open with no network, sign out."""
from __future__ import annotations

from datetime import datetime
from typing import Any

import jwt
import qrcode
import qrcode.util

from app.city import CITY_TZ
from app.codes import base45
from tests.helpers import bearer, code, credential, enrol, issuer, terminal
from tests.web.support import CODE_TTL_SECONDS, Site, shown_code, sign_in, verify


ALPHANUMERIC = frozenset("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:")


def test_a_signed_in_citizen_shows_a_code_a_reader_accepts_and_a_fresh_one_before_expiry(
        site: Site, browse: Any) -> None:
    citizen = enrol(site.client)
    page = browse()
    sign_in(page, site, citizen["app_token"])
    bus = bearer(terminal(site.client, "bus"))

    first = shown_code(page)
    assert first == page.get_attribute("#qr", "data-code")
    expires = datetime.fromtimestamp(jwt.decode(first, options={"verify_signature": False})["exp"], CITY_TZ)
    # The text alternative names the expiry in Beijing time, though this browser is in London.
    assert expires.strftime("%H:%M:%S") in page.text_content("#code-alt")
    assert expires.strftime("%H:%M:%S") in page.get_attribute("#qr", "aria-label")
    assert verify(site, bus, first)["decision"] == "accept"

    page.wait_for_function("first => document.querySelector('#qr').dataset.code !== first", arg=first,
                           timeout=(CODE_TTL_SECONDS + 2) * 1000)
    second = shown_code(page)
    assert second != first
    assert datetime.now(CITY_TZ) < expires, "the new code came before the old one expired"
    hall = bearer(terminal(site.client))  # the bus would call a second tap so soon a duplicate
    assert verify(site, hall, second)["decision"] == "accept"

    site.recorded(citizen["app_token"])  # the record writer of `citycode serve` has written the scans
    page.reload()
    page.wait_for_selector("#history li:has-text('扫码')")
    assert "票价 ¥" in page.text_content("#history")


def test_the_code_is_renewed_when_the_page_becomes_visible_again(site: Site, browse: Any) -> None:
    page = browse()
    sign_in(page, site, enrol(site.client)["app_token"])
    first = page.get_attribute("#qr", "data-code")
    page.evaluate("""() => {
        Object.defineProperty(document, 'visibilityState', {value: 'visible', configurable: true});
        document.dispatchEvent(new Event('visibilitychange'));
    }""")
    page.wait_for_function("first => document.querySelector('#qr').dataset.code !== first", arg=first,
                           timeout=3000)


def test_approving_a_request_by_click_lets_the_officer_read_it_once_and_denying_does_not(
        site: Site, browse: Any) -> None:
    citizen = enrol(site.client, name="王小明")
    police = issuer(site.client, "id_card", name="青岛市公安局")
    credential(site.client, police, citizen["citizen_id"], "id_card", number="370202199001011234")
    officer = bearer(terminal(site.client, "hall", hall="city", counter="3"))

    def ask(purpose: str) -> str:
        response = site.client.post("/v1/disclosures", headers=officer, json={
            "code": code(site.client, citizen["app_token"]), "credential_types": ["id_card"],
            "purpose": purpose, "fields": ["id_card.holder.name", "id_card.number"]})
        assert response.status_code == 201, response.get_json()
        return response.get_json()["disclosure_id"]  # type: ignore[no-any-return]

    approved, denied = ask("办理居住证"), ask("核验身份")
    page = browse()
    sign_in(page, site, citizen["app_token"])
    card = page.locator(f'li.request[data-id="{approved}"]')
    card.wait_for()
    for shown in ("办理居住证", "3 号窗口", "青岛市政务服务大厅", "居民身份证 · 持证人姓名",
                  "居民身份证 · 证件号码"):
        assert shown in card.inner_text()
    assert site.client.get(f"/v1/disclosures/{approved}", headers=officer).get_json()["status"] == "pending"

    who = "青岛市政务服务大厅（市民中心） · 3 号窗口"
    card.get_by_role("button", name=f"同意{who}的请求").click()
    card.locator("text=已同意。").wait_for()
    page.locator(f'li.request[data-id="{denied}"] button:not(.primary)').click()
    page.locator(f'li.request[data-id="{denied}"] >> text=已拒绝。').wait_for()

    read = site.client.get(f"/v1/disclosures/{approved}", headers=officer)
    assert read.status_code == 200
    body = read.get_json()
    assert body["status"] == "approved"
    assert body["credentials"][0]["holder"] == {"name": "王小明"}
    assert body["credentials"][0]["number"] == "370202199001011234"
    assert site.client.get(f"/v1/disclosures/{approved}", headers=officer).status_code == 410
    assert site.client.get(f"/v1/disclosures/{denied}", headers=officer).get_json()["status"] == "denied"
    page.wait_for_selector("#pending li.quiet")  # answered requests leave the list


def test_a_wrong_token_is_refused_and_signing_out_forgets_the_token(site: Site, browse: Any) -> None:
    page = browse(locale="en-GB")
    page.goto(site.url("/app"))
    page.fill("#token", "cct_not-a-real-token")
    page.click("#signin-form button[type=submit]")
    page.wait_for_selector("#signin-error:has-text('not accepted')")
    assert page.evaluate("localStorage.length") == 0

    sign_in(page, site, enrol(site.client)["app_token"])
    assert page.evaluate("localStorage.getItem('citycode.appToken')")
    page.get_by_role("button", name="Sign out").click()
    assert page.is_visible("#signin") and not page.is_visible("#qr")
    assert page.evaluate("localStorage.length") == 0


def test_with_no_network_and_no_device_certificate_the_app_opens_and_says_it_is_offline_instead_of_a_code(
        site: Site, browse: Any) -> None:
    page = browse()
    page.route("**/v1/me/devices", lambda route: route.abort())  # this phone never got a certificate
    sign_in(page, site, enrol(site.client)["app_token"])
    page.evaluate("navigator.serviceWorker.ready.then(() => true)")
    page.reload()  # now under the service worker's control
    page.wait_for_selector("#qr svg")
    assert page.evaluate("navigator.serviceWorker.controller !== null")

    page.context.set_offline(True)
    page.reload()
    page.wait_for_selector("#net", state="visible")
    assert "当前离线，无法出示码" in page.text_content("#net")
    assert page.text_content("#mode") == "" and page.text_content("#device") == ""
    assert page.locator("#qr svg").count() == 0 and not page.is_visible("#qr")
    assert "当前离线" in page.text_content("#code-alt")

    page.context.set_offline(False)
    page.evaluate("window.dispatchEvent(new Event('online'))")
    page.wait_for_selector("#qr svg")
    assert page.is_hidden("#net")


def test_the_page_s_qr_encoder_draws_the_same_symbol_as_the_qrcode_library(site: Site, browse: Any) -> None:
    """Bit for bit, for every mask, from version 1 to 21 (version information from 7 on), in byte
    mode and in alphanumeric mode (device-bound codes: a sealed CC3 code is version 12)."""
    sealed = "CC3:" + base45.encode(bytes(range(256)) + bytes(20))
    texts = ["CityCode", "x" * 150, "一码通城 · CityCode", "y" * 280, "z" * 700,
             code(site.client, enrol(site.client)["app_token"]), "CC3:AB", sealed, "Q-9 $%*+./:" * 80]
    page = browse()
    page.goto(site.url("/app"))
    drawn = page.evaluate("""async (texts) => {
        const qr = await import('/web/static/qr.js');
        return texts.map((t) => [0, 1, 2, 3, 4, 5, 6, 7].map((mask) => {
            const s = qr.encode(t, mask);
            return [s.version, s.modules.map((r) => r.map(Number))];
        }));
    }""", texts)
    versions = set()
    for text, symbols in zip(texts, drawn):
        for mask, (version, modules) in enumerate(symbols):
            reference = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, mask_pattern=mask,
                                      border=0)
            mode = qrcode.util.MODE_ALPHA_NUM if set(text) <= ALPHANUMERIC else qrcode.util.MODE_8BIT_BYTE
            reference.add_data(qrcode.util.QRData(text.encode(), mode=mode))
            reference.make(fit=True)
            assert version == reference.version
            expected = [[int(dark) for dark in row] for row in reference.get_matrix()]
            assert modules == expected, (text[:20], mask)
            versions.add(version)
    assert min(versions) == 1 and max(versions) >= 21
    assert len(sealed) == 418 and drawn[texts.index(sealed)][0][0] == 12
