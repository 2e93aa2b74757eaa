"""Codes minted by the citizen page itself, offline (issue #11 "Offline", issue #10 in the
browser): headless Chromium registers a non-extractable WebCrypto key while online, then, with
the network cut, shows sealed CC3 codes (or CC2 codes when it holds no usable reader key) that an
offline reader from scanners/ and POST /v1/verify accept."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from app.city import load
from app.scenes.bus import FareTable
from scanners.reader import Reader
from tests.helpers import ADMIN, bearer, credential, enrol, issuer, terminal
from tests.web.support import AUDIT, Site, photograph, shown_code, sign_in, verify

# What the page keeps in IndexedDB for the signed-in citizen (offline.js).
KEPT = """async () => {
  const db = await new Promise((ok, no) => { const r = indexedDB.open('citycode-offline'); r.onsuccess = () => ok(r.result); r.onerror = () => no(r.error); });
  const all = await new Promise((ok) => { const r = db.transaction('devices').objectStore('devices').getAll(); r.onsuccess = () => ok(r.result); });
  db.close();
  return all.map((k) => ({ citizen_id: k.citizen_id, device_id: k.device_id, readers: (k.reader_keys || []).length,
    private_type: k.keyPair && k.keyPair.privateKey.type, private_extractable: k.keyPair && k.keyPair.privateKey.extractable,
    usages: k.keyPair && k.keyPair.privateKey.usages, algorithm: k.keyPair && k.keyPair.privateKey.algorithm.namedCurve }));
}"""


def registered(page: Any, ready: str) -> None:
    page.wait_for_selector(f'#device[data-ready="{ready}"]')


def go_offline(page: Any) -> None:
    """Under the service worker's control, then no network at all, then the page opened anew."""
    page.evaluate("navigator.serviceWorker.ready.then(() => true)")
    # Installed with the shell, before any page it controls asked for it: the minting module too.
    assert page.evaluate("caches.match('/web/static/devicecode.js').then((hit) => Boolean(hit))")
    page.reload()
    page.wait_for_selector("#qr[data-mode=online] svg")
    assert page.evaluate("navigator.serviceWorker.controller !== null")
    page.context.set_offline(True)
    page.reload()


def test_offline_the_page_mints_sealed_codes_an_offline_bus_reader_charges_and_the_service_accepts(
        site: Site, browse: Any, tmp_path: Path) -> None:
    citizen = enrol(site.client)
    credential(site.client, issuer(site.client, "student_card"), citizen["citizen_id"], "student_card")
    bus = terminal(site.client, "bus", line="1", vehicle="鲁B-30001")
    reader = Reader.enrol(tmp_path / "reader", site.base_url, bus)  # synced over HTTP: holds the reader keys
    assert reader.material.reader_keys
    page = browse()
    sign_in(page, site, citizen["app_token"])
    registered(page, "sealed")  # in the background, after signing in
    assert "本机可离线亮码" in page.text_content("#device")
    assert page.text_content("#mode") == "在线码：由服务签发"

    [kept] = page.evaluate(KEPT)
    assert kept["citizen_id"] == citizen["citizen_id"] and kept["device_id"].startswith("dev_")
    assert (kept["private_type"], kept["private_extractable"], kept["usages"], kept["algorithm"]) == (
        "private", False, ["sign"], "P-256")
    assert kept["readers"] == 2
    devices = site.client.get("/v1/me/devices", headers=bearer(citizen["app_token"])).get_json()
    assert [d["device_id"] for d in devices] == [kept["device_id"]]

    go_offline(page)
    page.wait_for_selector("#qr[data-mode=offline-sealed] svg")
    assert page.text_content("#mode") == "离线码：由本机生成，已加密，仅核验设备可读取"
    assert "此码由本机生成" in page.text_content("#net") and page.is_visible("#net")
    assert page.evaluate(AUDIT) == []
    photograph(page, site, "app-offline-zh")
    first = shown_code(page)  # what a camera reads off the screen
    assert first.startswith("CC3:") and len(first) == 418 and first == page.get_attribute("#qr", "data-code")

    try:
        charged = reader.scan(first, offline=True)
        assert (charged.decision, charged.reason, charged.mode) == ("accept", "ok", "offline")
        student = FareTable.from_config(load("bus")).fare_for(["stu"])
        assert (charged.data["fare"]["category"], charged.data["fare"]["amount_cents"]) == (
            student.category, student.amount_cents)
        assert reader.scan(first, offline=True).reason == "replayed"
    finally:
        reader.close()

    page.click("#refresh")  # still offline: a new code, with a new ephemeral key
    page.wait_for_function("first => document.querySelector('#qr').dataset.code !== first", arg=first)
    second = shown_code(page)
    assert second.startswith("CC3:") and second != first
    hall = bearer(terminal(site.client))
    online = verify(site, hall, second)
    assert (online["decision"], online["reason"]) == ("accept", "ok")
    assert verify(site, hall, second)["reason"] == "replayed"


def test_without_a_reader_key_for_the_clock_the_page_mints_a_cc2_code_and_signing_out_forgets_the_device(
        site: Site, browse: Any) -> None:
    citizen = enrol(site.client)
    page = browse(locale="en-GB")
    sign_in(page, site, citizen["app_token"])
    registered(page, "sealed")
    assert "This phone can show codes offline until" in page.text_content("#device")
    assert page.text_content("#mode") == "Online code from the service"
    page.evaluate("""async () => {  // the reader keys' windows are over (a phone offline for days)
      const db = await new Promise((ok) => { const r = indexedDB.open('citycode-offline'); r.onsuccess = () => ok(r.result); });
      const store = db.transaction('devices', 'readwrite').objectStore('devices');
      const all = await new Promise((ok) => { const r = store.getAll(); r.onsuccess = () => ok(r.result); });
      for (const k of all) { k.reader_keys = k.reader_keys.map((r) => ({ ...r, valid_until: 1 })); store.put(k); }
      await new Promise((ok) => { store.transaction.oncomplete = ok; });
      db.close();
    }""")

    go_offline(page)
    page.wait_for_selector("#qr[data-mode=offline] svg")
    assert page.text_content("#mode") == "Offline code made on this phone (not sealed)"
    assert "this code was made on this phone" in page.text_content("#net")
    shown = shown_code(page)
    assert shown.startswith("CC2:")
    assert verify(site, bearer(terminal(site.client)), shown)["decision"] == "accept"

    page.context.set_offline(False)
    page.evaluate("window.dispatchEvent(new Event('online'))")
    page.wait_for_selector("#qr[data-mode=online] svg")
    assert page.is_hidden("#net") and page.text_content("#mode") == "Online code from the service"

    page.get_by_role("button", name="Sign out").click()
    page.wait_for_function(f"() => ({KEPT})().then((kept) => kept.length === 0)")
    headers = bearer(citizen["app_token"])
    for _ in range(50):  # the removal at the service is the page's last request
        if site.client.get("/v1/me/devices", headers=headers).get_json() == []:
            break
        page.wait_for_timeout(100)
    assert site.client.get("/v1/me/devices", headers=headers).get_json() == []


def test_a_suspended_citizen_s_phone_stops_minting_offline_but_keeps_its_key(site: Site, browse: Any) -> None:
    citizen = enrol(site.client)
    page = browse()
    sign_in(page, site, citizen["app_token"])
    registered(page, "sealed")
    suspended = site.client.post(f"/v1/admin/citizens/{citizen['citizen_id']}/suspend", headers=ADMIN, json={})
    assert suspended.status_code == 200

    page.click("#refresh")  # online: the service refuses a code, and so will this phone offline
    page.wait_for_selector("#code-alt:has-text('账户已暂停')")
    page.wait_for_function(f"() => ({KEPT})().then((kept) => kept.length === 1 && !kept[0].device_id)")
    assert page.text_content("#device") == ""
    page.context.set_offline(True)
    page.click("#refresh")
    page.wait_for_selector("#code-alt:has-text('当前离线')")
    assert page.is_hidden("#qr") and page.locator("#qr svg").count() == 0
    [kept] = page.evaluate(KEPT)
    assert kept["private_type"] == "private" and kept["private_extractable"] is False
