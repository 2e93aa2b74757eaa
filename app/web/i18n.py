"""Which language a page is in, and the names the pages show for the API's wire values.

Order of precedence: ``?lang=`` (the switch's links; remembered in a cookie), the cookie, then
the browser's ``Accept-Language``, then Chinese. Only the page texts change: API answers carry
their own ``{zh, en}`` messages.
"""
from __future__ import annotations

from typing import Any

from flask import request
from flask_babel import gettext as _, lazy_gettext as _l

from app.codes.messages import MESSAGES

LANGUAGES: tuple[str, ...] = ("zh", "en")
DEFAULT = "zh"
TIMEZONE = "Asia/Shanghai"
COOKIE = "lang"
HTML_LANG = {"zh": "zh-CN", "en": "en"}
INTL_LOCALE = {"zh": "zh-CN", "en": "en-GB"}


def chosen(value: str | None) -> str | None:
    """``value`` if it names a language the pages are in."""
    return value if value in LANGUAGES else None


def select_locale() -> str:
    """Flask-Babel's locale selector for the current request."""
    return (chosen(request.args.get(COOKIE)) or chosen(request.cookies.get(COOKIE))
            or request.accept_languages.best_match(LANGUAGES) or DEFAULT)


# Names of wire values, for the pages (the API keeps the wire values).
CREDENTIAL_TYPES = {
    "id_card": _l("Resident ID card"), "social_security_card": _l("Social security card"),
    "health_code": _l("Health code"), "senior_card": _l("Senior card"),
    "student_card": _l("Student card"), "disability_card": _l("Disability card"),
    "scenic_reservation": _l("Scenic spot reservation"), "scenic_annual_pass": _l("Scenic annual pass"),
    "business_licence": _l("Business licence"), "driving_licence": _l("Driving licence"),
    "residence_permit": _l("Residence permit"), "household_register": _l("Household register"),
    "marriage_certificate": _l("Marriage certificate"), "degree_certificate": _l("Degree certificate"),
}
FIELDS = {
    "number": _l("number"), "issuer": _l("issuer"), "valid_until": _l("valid until"),
    "attributes": _l("details"), "holder.name": _l("holder's name"),
    "holder.id_number": _l("holder's ID number"),
}
ENTITLEMENTS = {
    "stu": _l("Student fare"), "sen": _l("Senior"), "dis": _l("Disabled"),
    "sap": _l("Scenic annual pass"), "hg": _l("Health: green"), "hy": _l("Health: yellow"),
    "hr": _l("Health: red"), "rla": _l("Reserved: Laoshan"), "rzt": _l("Reserved: Zhanshan Temple"),
    "rjm": _l("Reserved: Jimo Old Town"),
}
ACTIONS = {
    "scan": _l("Code scanned"), "disclosure_requested": _l("Disclosure requested"),
    "disclosure_approved": _l("Disclosure approved"), "disclosure_denied": _l("Disclosure denied"),
    "disclosure_read": _l("Credentials read"), "disclosure_expired": _l("Disclosure expired"),
    "disclosure_withdrawn": _l("Disclosure withdrawn"), "citizen_enrolled": _l("Enrolled"),
    "citizen_suspended": _l("Account suspended"), "citizen_restored": _l("Account restored"),
    "credential_issued": _l("Credential issued"), "credential_revoked": _l("Credential revoked"),
    "device_registered": _l("Phone registered for offline codes"), "device_removed": _l("Phone removed"),
}
SERVICES_EN = {
    "household": "Household registration", "social_security": "Social security",
    "medical_insurance": "Medical insurance", "housing_fund": "Housing fund",
    "real_estate": "Real estate registration", "business": "Business start-up", "tax": "Tax",
    "entry_exit": "Exit and entry", "general": "General services",
    "social_insurance": "Social and medical insurance", "agriculture": "Agriculture and rural affairs",
}


def service_name(service: str, data_name: str, locale: str) -> str:
    """The hall data names services in Chinese; English pages use their English names."""
    return SERVICES_EN.get(service, data_name) if locale == "en" else data_name


def client_texts(locale: str) -> dict[str, Any]:
    """What the pages' scripts show, translated: handed to them as JSON in the page."""
    def names(table: dict[str, Any]) -> dict[str, str]:
        return {key: str(value) for key, value in table.items()}

    return {
        "locale": INTL_LOCALE[locale], "timeZone": TIMEZONE,
        "credentialTypes": names(CREDENTIAL_TYPES), "fields": names(FIELDS),
        "entitlements": names(ENTITLEMENTS), "actions": names(ACTIONS),
        "reasons": {reason: text[locale] for reason, text in MESSAGES.items()},
        "t": {
            "signInFailed": _("This app token was not accepted."),
            "notCitizen": _("This token is not a citizen's app token."),
            "network": _("The service cannot be reached."),
            "validUntil": _("Code valid until %(time)s (Beijing time)."),
            "refreshIn": _("New code in %(seconds)s s"),
            "refreshing": _("Getting a new code…"),
            "qrLabel": _("QR code to show at a reader, valid until %(time)s"),
            "offline": _("Offline: no code can be shown. Connect to the network to get a fresh code."),
            "online": _("Online code from the service"),
            "offlineSealed": _("Offline code made on this phone, sealed: only readers can open it"),
            "offlineSigned": _("Offline code made on this phone (not sealed)"),
            "offlineMinted": _("Offline: this code was made on this phone; readers check it without the network."),
            "deviceReady": _("This phone can show codes offline until %(date)s."),
            "suspended": _("Your account is suspended: no code can be shown."),
            "noPending": _("No requests are waiting for you."),
            "asks": _("Asked by"), "fieldsAsked": _("Fields"), "purpose": _("Purpose"),
            "expires": _("Answer by"), "approve": _("Approve"), "deny": _("Deny"),
            "approveLabel": _("Approve the request from %(who)s"),
            "denyLabel": _("Deny the request from %(who)s"),
            "approved": _("Approved."), "denied": _("Denied."),
            "counter": _("counter %(counter)s"), "terminal": _("terminal %(id)s"),
            "noCredentials": _("No credentials yet."), "noEntitlements": _("No entitlements."),
            "noHistory": _("Nothing yet."), "validTo": _("valid until %(date)s"),
            "status": {"active": _("active"), "revoked": _("revoked"), "suspended": _("suspended"),
                       "expired": _("expired")},
            "fare": _("Fare ¥%(amount)s"), "trip": _("%(from)s → %(to)s"),
            "decisionAccept": _("accepted"), "decisionDeny": _("denied"),
            "ticket": _("Ticket %(ticket)s"),
            "unpaired": _("unfinished trip"),
        },
    }
