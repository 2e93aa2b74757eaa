"""Reason vocabulary, messages, the exception tree, decisions, and the core's purity."""
from __future__ import annotations

import ast
import dataclasses
import re
from pathlib import Path

import pytest

from app.codes import errors
from app.codes.decision import CodeClaims, Decision, new_claims
from app.codes.messages import MESSAGES, REASONS, message_for

API_REASONS = {"ok", "malformed", "bad_signature", "unknown_key", "wrong_type", "expired",
               "not_yet_valid", "replayed", "revoked", "suspended", "not_entitled",
               "duplicate_tap", "passback", "no_entry", "capacity_full", "no_reservation",
               "already_admitted", "closed", "degraded"}
CJK = re.compile(r"[\u4e00-\u9fff]")
CLAIMS = CodeClaims("cc", "p_1", 1, 61, "abcdefghijkl", ("stu",), "kid1")


def test_messages_cover_exactly_the_api_vocabulary() -> None:
    assert REASONS == API_REASONS == set(MESSAGES)


@pytest.mark.parametrize("reason", sorted(API_REASONS))
def test_every_reason_reads_in_chinese_and_english(reason: str) -> None:
    message = message_for(reason)
    assert set(message) == {"zh", "en"}
    assert CJK.search(message["zh"]) and message["en"][:1].isupper()


def test_messages_cannot_be_changed_at_run_time() -> None:
    with pytest.raises(TypeError):
        MESSAGES["ok"]["zh"] = "x"  # type: ignore[index]


def test_one_exception_class_per_deny_reason() -> None:
    assert set(errors.ERROR_BY_REASON) == API_REASONS - {"ok"}
    for reason, cls in errors.ERROR_BY_REASON.items():
        assert issubclass(cls, errors.CodeError) and cls.reason == reason


def test_replay_unavailable_is_a_degraded_code_error() -> None:
    assert issubclass(errors.ReplayUnavailable, errors.Degraded)
    assert errors.ReplayUnavailable("down").reason == "degraded"


def test_exceptions_carry_their_data() -> None:
    expired = errors.Expired(exp=100, now=200.0)
    assert (expired.exp, expired.now, expired.data) == (100, 200.0, {"exp": 100, "now": 200.0})
    assert errors.NotYetValid(300, 200.0).valid_from == 300
    assert errors.UnknownKey("k1").kid == "k1"
    assert (errors.Replayed("cc", "j").iss, errors.Replayed("cc", "j").jti) == ("cc", "j")
    assert errors.Suspended("p_1").sub == "p_1"
    assert errors.WrongType(iss="qd").iss == "qd"


def test_accept_decision_reads_ok_and_holds_the_claims() -> None:
    decision = Decision.accept(CLAIMS)
    assert (decision.decision, decision.reason, decision.accepted) == ("accept", "ok", True)
    assert decision.to_dict() == {"decision": "accept", "reason": "ok", "message": dict(MESSAGES["ok"])}
    assert decision.to_dict(include_claims=True)["claims"]["ent"] == ["stu"]


def test_deny_decision_carries_reason_message_and_optional_claims() -> None:
    decision = Decision.deny("expired", CLAIMS, detail="code expired")
    assert (decision.decision, decision.reason, decision.accepted) == ("deny", "expired", False)
    assert decision.message == MESSAGES["expired"] and decision.claims is CLAIMS
    assert decision.detail == "code expired"
    assert "claims" not in decision.to_dict()  # pseudonyms leave only when asked for


def test_deny_needs_a_reason_from_the_vocabulary() -> None:
    with pytest.raises(ValueError):
        Decision.deny("ok")
    with pytest.raises(KeyError):
        Decision.deny("nope")


def test_decision_from_an_error_uses_its_reason() -> None:
    decision = Decision.from_error(errors.Passback("second entry"))
    assert (decision.reason, decision.detail) == ("passback", "second entry")


def test_scene_data_is_added_to_the_body() -> None:
    decision = Decision.accept(CLAIMS).with_data(fare={"amount_cents": 100, "category": "student"})
    assert decision.to_dict()["fare"] == {"amount_cents": 100, "category": "student"}
    assert Decision.accept(CLAIMS, {"trip": {"station": "A"}}).to_dict()["trip"] == {"station": "A"}


def test_hot_path_constructors_build_the_same_objects() -> None:
    values = ("cc", "p_1", 1, 61, "abcdefghijkl", ("stu",), "kid1")
    fast = new_claims(*values)
    assert fast == CodeClaims(*values) and type(fast) is CodeClaims
    assert dataclasses.astuple(fast) == values
    accepted = Decision.accept(fast)
    assert accepted == Decision("accept", "ok", MESSAGES["ok"], fast, "", {})
    assert [getattr(accepted, f.name) for f in dataclasses.fields(Decision)] == [
        "accept", "ok", MESSAGES["ok"], fast, "", {}]


def test_decisions_and_claims_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        Decision.accept(CLAIMS).reason = "x"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        CLAIMS.sub = "x"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        new_claims(*dataclasses.astuple(CLAIMS)).sub = "x"  # type: ignore[misc]


def test_codes_package_imports_no_web_framework() -> None:
    """Offline readers import the core unchanged: no Flask (or anything HTTP) in app/codes."""
    package = Path(errors.__file__).parent
    for source in package.glob("*.py"):
        tree = ast.parse(source.read_text(), str(source))
        for node in ast.walk(tree):
            names = ([alias.name for alias in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            for name in names:
                top = name.split(".")[0]
                assert top not in {"flask", "werkzeug", "marshmallow", "flask_smorest", "sqlalchemy"}, source
                assert not name.startswith("app.") or name.startswith(("app.codes", "app.signing")), source
