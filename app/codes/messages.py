"""The words a gate, bus reader or hall kiosk shows for each reason code, in Chinese and English.

The keys are API.md's fixed vocabulary; changing a key is an API change, rewording a message is not.
"""
from __future__ import annotations

from types import MappingProxyType
from typing import Mapping

Message = Mapping[str, str]

_MESSAGES: dict[str, dict[str, str]] = {
    "ok": {"zh": "验证通过", "en": "Accepted."},
    "malformed": {"zh": "无法识别此码，请刷新后重试",
                  "en": "Code not readable. Please refresh it and try again."},
    "bad_signature": {"zh": "无效码，请使用官方应用出示",
                      "en": "Invalid code. Please show the code from the official app."},
    "unknown_key": {"zh": "无法验证此码，请刷新后重试",
                    "en": "This code cannot be checked. Please refresh it and try again."},
    "wrong_type": {"zh": "非一码通城二维码",
                   "en": "This is not a CityCode code."},
    "expired": {"zh": "码已过期，请刷新后重试",
                "en": "Code expired. Please refresh it and try again."},
    "not_yet_valid": {"zh": "码尚未生效，请检查手机时间",
                      "en": "Code not valid yet. Please check your phone's clock."},
    "replayed": {"zh": "此码已使用，请刷新后重试",
                 "en": "Code already used. Please refresh it and try again."},
    "revoked": {"zh": "此码已作废",
                "en": "This code has been revoked."},
    "suspended": {"zh": "账户已暂停使用，请到服务窗口咨询",
                  "en": "Account suspended. Please ask at a service counter."},
    "not_entitled": {"zh": "无此项资格或权益",
                     "en": "Not entitled to this service."},
    "duplicate_tap": {"zh": "已刷码，请勿重复刷码",
                      "en": "Already tapped. You will not be charged twice."},
    "passback": {"zh": "已有进站记录，请先出站",
                 "en": "Already entered. Please exit first."},
    "no_entry": {"zh": "无进站记录，请到客服中心处理",
                 "en": "No entry record. Please go to the service centre."},
    "capacity_full": {"zh": "今日预约已满，暂停入园",
                      "en": "Fully booked today. Admission closed."},
    "no_reservation": {"zh": "未查询到今日预约",
                       "en": "No reservation found for today."},
    "already_admitted": {"zh": "今日已入园",
                         "en": "Already admitted today."},
    "closed": {"zh": "当前不在开放时间",
               "en": "Closed at this time."},
    "degraded": {"zh": "系统繁忙，请稍后重试或走人工通道",
                 "en": "Service temporarily degraded. Please retry or use the staffed lane."},
}

MESSAGES: Mapping[str, Message] = MappingProxyType(
    {reason: MappingProxyType(text) for reason, text in _MESSAGES.items()})
"""reason code → read-only ``{"zh": …, "en": …}``."""

REASONS: frozenset[str] = frozenset(MESSAGES)
"""API.md's fixed reason vocabulary."""


def message_for(reason: str) -> Message:
    """The bilingual message for ``reason``; an unknown reason is a programming error (KeyError)."""
    return MESSAGES[reason]
