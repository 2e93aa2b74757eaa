"""What ``citycode demo`` prints: narration in Chinese, English or both, one line per scan, and the
closing summary (trips, fares, denies by reason, anomalies)."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable, Literal

Lang = Literal["zh", "en", "both"]

REASONS_ZH = {"ok": "通过", "replayed": "重复使用", "duplicate_tap": "重复刷卡", "passback": "重复进站",
              "no_entry": "无进站记录", "no_reservation": "未预约", "already_admitted": "今日已入园",
              "capacity_full": "名额已满", "expired": "已过期", "revoked": "已撤销", "suspended": "已停用",
              "degraded": "降级", "malformed": "格式错误", "bad_signature": "签名无效",
              "not_entitled": "无权限", "closed": "未开放"}
ANOMALIES_ZH = {"double_use": "一码多用", "used_after_online": "在线使用后又离线使用",
                "impossible_travel": "不可能的行程", "stale_trust": "信任数据过旧"}
CATEGORY_ZH = {"full": "全价", "student": "学生", "senior": "老年", "disabled": "残疾"}


@dataclass
class Scan:
    who: str
    names: tuple[str, str]
    place: tuple[str, str]
    kind: str
    direction: str | None
    decision: str
    reason: str
    message: dict[str, str]
    data: dict[str, Any]
    mode: str
    ms: float
    station: str | None = None


@dataclass
class Report:
    scans: list[Scan] = field(default_factory=list)
    disclosures: list[str] = field(default_factory=list)
    stored: int = 0
    duplicates: int = 0
    pending: int = 0
    settlement: dict[str, Any] = field(default_factory=dict)
    anomalies: list[dict[str, Any]] = field(default_factory=list)
    history: dict[str, dict[str, Any]] = field(default_factory=dict)
    finished_at: datetime | None = None

    def denies(self) -> Counter[str]:
        return Counter(s.reason for s in self.scans if s.decision != "accept")

    def bus_fares(self) -> list[tuple[Scan, dict[str, Any]]]:
        return [(s, s.data["fare"]) for s in self.scans if s.kind == "bus" and s.decision == "accept"
                and "fare" in s.data]

    def metro_trips(self) -> list[dict[str, Any]]:
        """Each accepted metro exit with its fare: the gate's own (online) or the settled one from
        the citizen's history (an exit decided offline is priced by the server at settlement)."""
        trips = []
        for scan in self.scans:
            if scan.kind != "metro" or scan.direction != "exit" or scan.decision != "accept":
                continue
            fare = scan.data.get("fare") or self.settled_fare(scan.who, scan.station)
            trips.append({"who": scan.names, "to": scan.place, "fare": fare, "mode": scan.mode})
        return trips

    def settled_trips(self) -> list[dict[str, Any]]:
        """The trips the service settled, from every citizen's ``/v1/me/history``."""
        return [trip for body in self.history.values() for trip in body.get("trips", [])]

    def in_a_trip(self, scan: Scan) -> bool:
        """Whether the service put this metro entry into one of the citizen's trips."""
        return any((trip.get("entry") or {}).get("station") == scan.station
                   for trip in self.history.get(scan.who, {}).get("trips", []))

    def settled_fare(self, who: str, station: str | None) -> dict[str, Any] | None:
        """The fare the service settled for ``who``'s trip out at ``station``."""
        for trip in self.history.get(who, {}).get("trips", []):
            if trip.get("status") == "settled" and (trip.get("exit") or {}).get("station") == station:
                return dict(trip["fare"])
        return None


class Narrator:
    """Prints in the chosen language(s); ``both`` puts the English under the Chinese."""

    def __init__(self, lang: Lang = "both", echo: Callable[[str], None] = print) -> None:
        self.lang, self.echo = lang, echo

    def _pair(self, zh: str, en: str, indent: str = "") -> None:
        if self.lang in ("zh", "both"):
            self.echo(indent + zh)
        if self.lang in ("en", "both"):
            self.echo(indent + ("  " if self.lang == "both" else "") + en)

    def section(self, zh: str, en: str) -> None:
        self.echo("")
        self._pair(f"== {zh} ==", f"== {en} ==")

    def say(self, zh: str, en: str) -> None:
        self._pair(zh, en, "  ")

    def note(self, zh: str, en: str) -> None:
        self._pair(f"（{zh}）", f"({en})", "  ")

    def scan(self, scan: Scan) -> None:
        mark = "✔" if scan.decision == "accept" else "✘"
        extra_zh, extra_en = _result_zh(scan.data), _result_en(scan.data)
        self._pair(f"{mark} {scan.names[0]} @ {scan.place[0]}：{scan.message.get('zh', '')}{extra_zh}"
                   f"  [{'离线' if scan.mode == 'offline' else '在线'} {scan.ms:.0f} ms]",
                   f"{mark} {scan.names[1]} @ {scan.place[1]}: {scan.reason}{extra_en}"
                   f"  [{scan.mode} {scan.ms:.0f} ms]", "  ")

    def summary(self, report: Report) -> None:
        self.section("早晨小结", "Summary of the morning")
        accepts = sum(s.decision == "accept" for s in report.scans)
        self.say(f"刷码 {len(report.scans)} 次：通过 {accepts}，拒绝 {len(report.scans) - accepts}；"
                 f"离线决定 {sum(s.mode == 'offline' for s in report.scans)} 次",
                 f"{len(report.scans)} scans: {accepts} accepted, {len(report.scans) - accepts} denied; "
                 f"{sum(s.mode == 'offline' for s in report.scans)} decided offline")
        bus = report.bus_fares()
        total = sum(f.get("amount_cents", 0) for _, f in bus)
        by_cat = Counter(f.get("category", "full") for _, f in bus)
        self.say(f"公交 {len(bus)} 人次，票款 ¥{total / 100:.2f}（" +
                 "，".join(f"{CATEGORY_ZH.get(c, c)} {n}" for c, n in by_cat.items()) + "）",
                 f"Bus: {len(bus)} rides, fares ¥{total / 100:.2f} (" +
                 ", ".join(f"{c} {n}" for c, n in by_cat.items()) + ")")
        for trip in report.metro_trips():
            fare = trip["fare"]
            price_zh = f"¥{fare['amount_cents'] / 100:.2f}" if fare else "待结算"
            price_en = f"¥{fare['amount_cents'] / 100:.2f}" if fare else "not settled yet"
            route = f"{fare.get('from')}→{fare.get('to')}" if fare and fare.get("from") else trip["to"][0]
            self.say(f"地铁行程 {trip['who'][0]}：{route}，{price_zh}（{'离线出站' if trip['mode'] == 'offline' else '在线出站'}）",
                     f"Metro trip {trip['who'][1]}: {route}, {price_en} ({trip['mode']} exit)")
        denies = report.denies()
        self.say("拒绝原因：" + ("，".join(f"{REASONS_ZH.get(r, r)}({r}) {n}" for r, n in denies.most_common()) or "无"),
                 "Denies by reason: " + (", ".join(f"{r} {n}" for r, n in denies.most_common()) or "none"))
        self.say(f"上传记录 {report.stored} 条，重复 {report.duplicates}，待上传 {report.pending}",
                 f"Records uploaded: {report.stored} stored, {report.duplicates} duplicates, {report.pending} pending")
        kinds = Counter(a.get("kind", "?") for a in report.anomalies)
        self.say("异常：" + ("，".join(f"{ANOMALIES_ZH.get(k, k)}({k}) {n}" for k, n in kinds.items()) or "无"),
                 "Anomalies: " + (", ".join(f"{k} {n}" for k, n in kinds.items()) or "none"))
        if report.settlement:
            self.say(f"结算服务：{_compact(report.settlement)}", f"Settlement run: {_compact(report.settlement)}")

    def settlement(self, report: Report) -> None:
        trips = report.settled_trips()
        status = Counter(t.get("status", "?") for t in trips)
        open_entries = sum(s.kind == "metro" and s.direction == "entry" and s.decision == "accept"
                           and s.mode == "offline" and not report.in_a_trip(s) for s in report.scans)
        self.say(f"含离线记录的地铁行程：已结算 {status.get('settled', 0)}，未配对 "
                 f"{status.get('unpaired_entry', 0) + status.get('unpaired_exit', 0)}",
                 f"Metro trips with an offline end: {status.get('settled', 0)} settled, "
                 f"{status.get('unpaired_entry', 0) + status.get('unpaired_exit', 0)} unpaired")
        if open_entries > 0:
            self.say(f"{open_entries} 个离线进站尚无出站：超过行程时限后按最高票价结算",
                     f"{open_entries} offline entr{'y' if open_entries == 1 else 'ies'} without an exit yet: "
                     "charged the maximum fare once the trip limit passes")


def _result_zh(data: dict[str, Any]) -> str:
    if fare := data.get("fare"):
        return f"，票价 ¥{fare.get('amount_cents', 0) / 100:.2f}（{CATEGORY_ZH.get(fare.get('category'), fare.get('category'))}）"
    if (trip := data.get("trip")) and "exited_at" in trip:
        return f"，出站 {trip.get('station')}，票价稍后结算"
    if trip := data.get("trip"):
        return f"，进站 {trip.get('station')}"
    if admission := data.get("admission"):
        return f"，入园（余票 {admission.get('remaining')}）"
    if ticket := data.get("ticket"):
        return f"，取号 {ticket}（前面 {data.get('ahead', 0)} 人）"
    return ""


def _result_en(data: dict[str, Any]) -> str:
    if fare := data.get("fare"):
        return f", fare ¥{fare.get('amount_cents', 0) / 100:.2f} ({fare.get('category')})"
    if (trip := data.get("trip")) and "exited_at" in trip:
        return f", exit at {trip.get('station')}, fare settled later"
    if trip := data.get("trip"):
        return f", entered at {trip.get('station')}"
    if admission := data.get("admission"):
        return f", admitted ({admission.get('remaining')} places left today)"
    if ticket := data.get("ticket"):
        return f", ticket {ticket} ({data.get('ahead', 0)} ahead)"
    return ""


def _compact(body: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v}" for k, v in body.items() if isinstance(v, (int, float, str)))
