"""``citycode demo``: a miniature city morning, told in Chinese and English.

Against a service it starts itself (``app.demo_service``) or a running one (``--url`` and
``--admin-token``): the city enrols six citizens and four issuers' credentials, registers readers,
and then every scan is a real QR image — the phone's ``/v1/me/code.png``, decoded with zxing-cpp —
decided by a ``scanners.reader.Reader`` (online first; some readers have lost their uplink and
decide offline). A hall visit ends in a disclosure the citizen approves on the phone. Then the
readers upload their journals, the trips are settled and a summary is printed: trips, fares,
denies by reason, anomalies.

Who does what is chosen so each citizen stays in one part of town (metro trips between
neighbouring stations): the service flags one pseudonym at two places too far apart for the time
between, and a morning squeezed into a minute must not look like teleporting. The one anomaly the
demo *does* stage is a screenshot of one code shown at two offline readers.
"""
from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable
from zoneinfo import ZoneInfo

from app.demo_report import Lang, Narrator, Report, Scan
from scanners import decode
from scanners.provision import CityApi, Citizen, Terminal
from scanners.reader import Reader

CITY_TZ = ZoneInfo("Asia/Shanghai")

# (key, 中文名, English name, credentials)
PEOPLE = (
    ("wang", "王小明", "Wang Xiaoming", ("student_card", "scenic_reservation")),
    ("li", "李秀英", "Li Xiuying", ("senior_card",)),
    ("zhang", "张伟", "Zhang Wei", ()),
    ("liu", "刘洋", "Liu Yang", ("student_card",)),
    ("sun", "孙强", "Sun Qiang", ()),
    ("chen", "陈静", "Chen Jing", ("id_card",)),
)
ISSUERS = {"student_card": "青岛市教育局", "senior_card": "青岛市民政局",
           "scenic_reservation": "青岛市文化和旅游局", "id_card": "青岛市公安局"}
# (key, kind, site, 中文, English, offline)
READERS = (
    ("bus1", "bus", {"line": "321", "vehicle": "鲁B-10001"}, "321路 鲁B-10001", "bus 321 (B-10001)", False),
    ("bus2", "bus", {"line": "321", "vehicle": "鲁B-10002"}, "321路 鲁B-10002（隧道中）", "bus 321 (B-10002, in a tunnel)", True),
    ("wusi", "metro", {"station": "五四广场"}, "地铁五四广场站", "metro Wusi Square", False),
    ("fushan", "metro", {"station": "浮山所"}, "地铁浮山所站（断网）", "metro Fushansuo (uplink down)", True),
    ("taidong", "metro", {"station": "台东"}, "地铁台东站", "metro Taidong", False),
    ("lijin", "metro", {"station": "利津路"}, "地铁利津路站", "metro Lijin Road", False),
    ("laoshan", "scenic", {"spot": "laoshan"}, "崂山风景区", "Laoshan scenic area", False),
    ("kiosk", "hall", {"hall": "city"}, "市民中心取号机", "city hall kiosk", False),
    ("counter", "hall", {"hall": "city", "counter": "4"}, "市民中心 4 号窗口", "city hall counter 4", False),
)


@dataclass
class City:
    api: CityApi
    citizens: dict[str, Citizen] = field(default_factory=dict)
    names: dict[str, tuple[str, str]] = field(default_factory=dict)
    terminals: dict[str, Terminal] = field(default_factory=dict)
    places: dict[str, tuple[str, str]] = field(default_factory=dict)
    readers: dict[str, Reader] = field(default_factory=dict)
    offline: set[str] = field(default_factory=set)


class Morning:
    """The demo's script, one scene a method."""

    def __init__(self, api: CityApi, work_dir: Path, out: Narrator) -> None:
        self.city = City(api)
        self.work_dir, self.out = work_dir, out
        self.report = Report()

    # -- the city's setup ------------------------------------------------------------------------
    def set_up(self) -> None:
        self.out.section("清晨，城市准备就绪", "Dawn: the city sets up")
        api, today = self.city.api, datetime.now(CITY_TZ).date().isoformat()
        issuers = {ctype: api.register_issuer(name, ctype) for ctype, name in ISSUERS.items()}
        for n, (key, zh, en, creds) in enumerate(PEOPLE, start=1):
            citizen = api.enrol_citizen(zh, label=key)
            self.city.citizens[key], self.city.names[key] = citizen, (zh, en)
            for ctype in creds:
                attributes = {"spot": "laoshan", "date": today} if ctype == "scenic_reservation" else {}
                api.issue(issuers[ctype], citizen, ctype, f"DEMO-{n:02d}-{ctype[:3].upper()}", **attributes)
        for key, kind, site, zh, en, offline in READERS:
            terminal = api.register_terminal(kind, **site)
            self.city.terminals[key], self.city.places[key] = terminal, (zh, en)
            self.city.readers[key] = Reader.enrol(self.work_dir / key, api.base_url, terminal.token)
            if offline:
                self.city.offline.add(key)
        self.out.say(f"登记市民 {len(PEOPLE)} 人，发证机关 {len(ISSUERS)} 个，读卡设备 {len(READERS)} 台；"
                     f"{len(self.city.offline)} 台设备离线",
                     f"{len(PEOPLE)} citizens enrolled, {len(ISSUERS)} issuers, {len(READERS)} readers enrolled; "
                     f"{len(self.city.offline)} of them offline")

    # -- scanning ----------------------------------------------------------------------------------
    def image(self, who: str) -> decode.DecodedImage:
        """The QR image the phone shows now, decoded the way a gate camera would."""
        citizen = self.city.citizens[who]
        return decode.decode_png(decode.fetch_code_png(self.city.api.base_url, citizen.app_token,
                                                       self.city.api.session), f"{who}.png")

    def scan(self, who: str, where: str, *, direction: str | None = None,
             image: decode.DecodedImage | None = None, service: str | None = None) -> Any:
        """One scan at reader ``where``; narrated and kept for the summary."""
        image = image or self.image(who)
        started = time.perf_counter()
        decided = self.city.readers[where].scan(image.text, direction=direction, service=service,
                                                offline=where in self.city.offline)
        verify_ms = (time.perf_counter() - started) * 1000
        scan = Scan(who=who, names=self.city.names[who], place=self.city.places[where],
                    kind=self.city.terminals[where].kind, direction=direction, decision=decided.decision,
                    reason=decided.reason, message=dict(decided.message), data=dict(decided.data),
                    mode=decided.mode, ms=image.decode_ms + verify_ms,
                    station=self.city.terminals[where].site.get("station"))
        self.report.scans.append(scan)
        self.out.scan(scan)
        return decided

    # -- the morning -------------------------------------------------------------------------------
    def buses(self) -> None:
        self.out.section("07:30 公交早高峰", "07:30 Buses")
        self.scan("wang", "bus1")
        self.scan("li", "bus1")
        self.scan("zhang", "bus2")
        self.scan("zhang", "bus2")
        shot = self.image("liu")
        self.scan("liu", "bus1", image=shot)
        self.out.note("有人用刘洋的截图再刷一次", "Someone shows a screenshot of Liu Yang's code")
        self.scan("liu", "bus1", image=shot)

    def metro(self) -> None:
        self.out.section("08:00 地铁", "08:00 Metro")
        self.scan("zhang", "wusi", direction="entry")
        self.scan("zhang", "fushan", direction="exit")
        self.scan("liu", "taidong", direction="entry")
        self.scan("liu", "taidong", direction="entry")
        self.scan("liu", "lijin", direction="exit")
        self.scan("li", "lijin", direction="exit")
        self.out.note("孙强的码被截图，在两台离线设备上各用一次",
                      "A screenshot of Sun Qiang's code is used at two offline readers")
        copy = self.image("sun")
        self.scan("sun", "bus2", image=copy)
        self.scan("sun", "fushan", direction="entry", image=copy)

    def scenic(self) -> None:
        self.out.section("10:00 崂山游览", "10:00 Laoshan")
        self.scan("wang", "laoshan")
        self.scan("wang", "laoshan")
        self.scan("li", "laoshan")
        self.scan("zhang", "laoshan")

    def hall(self) -> None:
        self.out.section("10:30 市民中心办事", "10:30 City hall")
        api = self.city.api
        self.scan("chen", "kiosk", service="social_security")
        counter = self.city.terminals["counter"]
        called = api.call("POST", "/v1/halls/city/call", counter.token, json={"counter": "4"})
        self.out.say(f"4 号窗口叫号 {called['ticket']}", f"Counter 4 calls {called['ticket']}")
        request = api.call("POST", "/v1/disclosures", counter.token,
                           json={"code": self.image("chen").text, "credential_types": ["id_card"],
                                 "purpose": "办理社保业务"})
        chen = self.city.citizens["chen"]
        pending = api.call("GET", "/v1/me/disclosures", chen.app_token, params={"status": "pending"})
        self.out.say(f"陈静手机收到 {len(pending)} 条亮证请求，点击同意",
                     f"Chen Jing's phone shows {len(pending)} disclosure request(s); she approves")
        api.call("POST", f"/v1/me/disclosures/{request['disclosure_id']}/approve", chen.app_token)
        shown = api.call("GET", f"/v1/disclosures/{request['disclosure_id']}", counter.token)
        types = ", ".join(c["type"] for c in shown.get("credentials", []))
        api.call("GET", f"/v1/disclosures/{request['disclosure_id']}", counter.token, expect=(410,))
        self.report.disclosures.append(shown.get("status", ""))
        self.out.say(f"窗口读取已授权的证照（{types}），只能读一次：再读得到 410",
                     f"The officer reads the approved credential ({types}) once; a second read is 410 Gone")

    # -- after the morning -------------------------------------------------------------------------
    def upload(self) -> None:
        self.out.section("网络恢复，上传刷码记录", "Uplinks back: readers upload their journals")
        for key, reader in self.city.readers.items():
            result = reader.upload()
            if not result.ok:
                raise RuntimeError(f"reader {key}: upload failed: {result.error}")
            self.report.stored += result.stored
            self.report.duplicates += result.duplicates
            self.report.pending += reader.pending()
        self.out.say(f"上传 {self.report.stored} 条记录，重复 {self.report.duplicates}，待传 {self.report.pending}",
                     f"{self.report.stored} records stored, {self.report.duplicates} duplicates, "
                     f"{self.report.pending} pending")

    def settle(self, settle: Callable[[], dict[str, Any] | None]) -> None:
        self.out.section("结算", "Settlement")
        self.report.settlement = settle() or {}
        mine = {t.terminal_id for t in self.city.terminals.values()}  # not an earlier run's
        self.report.anomalies = [a for a in self.city.api.anomalies() if a.get("terminal_id") in mine]
        for key in self.city.citizens:
            self.report.history[key] = self.city.api.call(
                "GET", "/v1/me/history", self.city.citizens[key].app_token, params={"limit": 100})
        self.out.settlement(self.report)

    def close(self) -> None:
        for reader in self.city.readers.values():
            reader.close()


def run_morning(base_url: str, admin_token: str, out: Narrator,
                settle: Callable[[], dict[str, Any] | None]) -> Report:
    """The whole morning against the service at ``base_url``; the report for the summary."""
    with tempfile.TemporaryDirectory(prefix="cc-demo-readers-") as scratch:
        morning = Morning(CityApi(base_url, admin_token), Path(scratch), out)
        try:
            morning.set_up()
            morning.buses()
            morning.metro()
            morning.scenic()
            morning.hall()
            morning.upload()
            morning.settle(settle)
        finally:
            morning.close()
    morning.report.finished_at = datetime.now(timezone.utc)
    return morning.report



def _settler(api: CityApi, service: Any | None) -> Callable[[], dict[str, Any] | None]:
    """Settlement as the service offers it: an admin endpoint whose path names ``settle`` in the
    OpenAPI document, else (a service this demo started) the ``citycode settle`` command."""
    def settle() -> dict[str, Any] | None:
        paths = api.call("GET", "/openapi.json").get("paths", {})
        for path, operations in paths.items():
            if "settle" in path and path.startswith("/v1/admin") and "post" in operations:
                answer = api.admin("POST", path, json={})
                return answer if isinstance(answer, dict) else {"result": answer}
        if service is not None:
            return service.settle()
        return None
    return settle


def run(url: str | None, admin_token: str | None, lang: Lang, echo: Callable[[str], None] = print,
        workers: int = 2) -> Report:
    """``citycode demo``: start a private service unless ``url`` is given, run the morning, print
    the summary, stop the service."""
    from app.demo_service import LocalService

    out = Narrator(lang, echo)
    if url:
        if not admin_token:
            raise ValueError("--url needs --admin-token")
        report = run_morning(url, admin_token, out, _settler(CityApi(url, admin_token), None))
    else:
        out.section("启动演示服务（嵌入式 SQLite 与 redis-server）", "Starting a demo service (embedded SQLite and redis-server)")
        with LocalService(workers=workers) as service:
            out.say(f"服务地址 {service.base_url}（数据目录 {service.root}）",
                    f"service at {service.base_url} (data in {service.root})")
            api = CityApi(service.base_url, service.admin_token)
            report = run_morning(service.base_url, service.admin_token, out, _settler(api, service))
    out.summary(report)
    return report
