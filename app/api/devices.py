"""Citizen devices (离线亮码): register a phone key, get and refresh its device certificate,
list and remove devices. The phone mints device-bound codes (``CC2:``) itself, offline."""
from __future__ import annotations

from typing import Any

import marshmallow as ma

from app.api.blueprint import Blueprint
from app.api.schemas import problem_doc
from app.api.security import current_principal, require
from app.auth import Role
from app.codes.device import DEVICE_PREFIX, SEALED_PREFIX
from app.codes.wire import b64url_encode
from app.devices import CertifiedDevice
from app.runtime import runtime

blp = Blueprint("devices", __name__, url_prefix="/v1/me/devices", description="Citizen devices (offline codes)")

_PROOF_DOC = ("ES256 signature (raw r||s, base64url) by the device key over the UTF-8 bytes "
              "`citycode-device-pop/1\\n<purpose>\\n<citizen_id>\\n<signed_at>` (purpose `register` or "
              "`refresh`); `signed_at` within 300 s of the server's clock")


class ProofIn(ma.Schema):
    signed_at = ma.fields.Integer(required=True, validate=ma.validate.Range(min=0, max=2**53 - 1))
    signature = ma.fields.String(required=True, validate=ma.validate.Length(min=80, max=90),
                                 metadata={"description": _PROOF_DOC})


class RegisterIn(ma.Schema):
    public_key = ma.fields.Raw(required=True, metadata={
        "description": "P-256 public key: a JWK object {kty: EC, crv: P-256, x, y}, or a COSE_Key "
                       "(CBOR, base64url string)"})
    proof = ma.fields.Nested(ProofIn, required=True)
    label = ma.fields.String(load_default=None, validate=ma.validate.Length(min=1, max=64))


class RefreshIn(ma.Schema):
    proof = ma.fields.Nested(ProofIn, required=True)


class ReaderKeyOut(ma.Schema):
    kid = ma.fields.String(required=True, metadata={"description": "base64url of the 4-byte reader kid"})
    public_key = ma.fields.Dict(required=True, metadata={"description": "P-256 public JWK"})
    valid_from = ma.fields.Integer(required=True)
    valid_until = ma.fields.Integer(required=True, metadata={
        "description": "seal CC3 codes to this key from valid_from until valid_until (phone clock)"})


class CertificateOut(ma.Schema):
    device_id = ma.fields.String(required=True)
    certificate = ma.fields.String(required=True, metadata={
        "description": "the device certificate: COSE_Sign1 (CWT) bytes, base64url; the phone puts "
                       "these bytes into every code it mints (docs/code-format-v2.md)"})
    certificate_id = ma.fields.String(required=True)
    issued_at = ma.fields.Integer(required=True)
    expires_at = ma.fields.Integer(required=True)
    refresh_after = ma.fields.Integer(required=True)
    code_seconds = ma.fields.Integer(required=True, metadata={"description": "lifetime of a minted code"})
    code_prefix = ma.fields.String(required=True)
    sealed_certificate = ma.fields.String(metadata={
        "description": "the v3 device certificate (base64url) a phone puts into sealed `CC3:` codes"})
    sealed_certificate_id = ma.fields.String()
    sealed_code_prefix = ma.fields.String()
    reader_keys = ma.fields.List(ma.fields.Nested(ReaderKeyOut), metadata={
        "description": "current and next reader keys, current first (docs/code-format-v2.md §7)"})


class DeviceOut(ma.Schema):
    device_id = ma.fields.String(required=True)
    label = ma.fields.String(allow_none=True)
    created_at = ma.fields.DateTime(required=True)
    certificate_expires_at = ma.fields.Integer(allow_none=True)


def _body(certified: CertifiedDevice) -> dict[str, Any]:
    issued = certified.certificate
    body: dict[str, Any] = {
        "device_id": certified.device_id, "certificate": b64url_encode(issued.certificate).decode(),
        "certificate_id": issued.cert_id, "issued_at": issued.issued_at, "expires_at": issued.expires_at,
            "refresh_after": certified.refresh_after, "code_seconds": runtime().devices.code_seconds,
            "code_prefix": DEVICE_PREFIX}
    if certified.sealed_certificate is not None:
        body.update(sealed_certificate=b64url_encode(certified.sealed_certificate.certificate).decode(),
                    sealed_certificate_id=certified.sealed_certificate.cert_id,
                    sealed_code_prefix=SEALED_PREFIX, reader_keys=list(certified.reader_keys))
    return body


@blp.route("", methods=["POST"])
@require(Role.CITIZEN)
@blp.arguments(RegisterIn)
@blp.response(201, CertificateOut)
@blp.alt_response(403, **problem_doc("Not a citizen token, or the citizen is suspended"))
@blp.alt_response(409, **problem_doc("Key registered elsewhere or removed, or too many devices"))
def register(body: dict[str, Any]) -> dict[str, Any]:
    """Register this device's P-256 key (with proof of possession) and get its certificate."""
    proof = body["proof"]
    return _body(runtime().devices.register(current_principal().principal_id, body["public_key"],
                                            proof["signed_at"], proof["signature"], body["label"]))


@blp.route("", methods=["GET"])
@require(Role.CITIZEN)
@blp.response(200, DeviceOut(many=True))
def my_devices() -> list[dict[str, Any]]:
    """My registered devices, oldest first."""
    return runtime().devices.list(current_principal().principal_id)


@blp.route("/<device_id>/certificate", methods=["POST"])
@require(Role.CITIZEN)
@blp.arguments(RefreshIn)
@blp.response(200, CertificateOut)
@blp.alt_response(403, **problem_doc("Not a citizen token, or the citizen is suspended"))
@blp.alt_response(404, **problem_doc("No such device of mine"))
def refresh(body: dict[str, Any], device_id: str) -> dict[str, Any]:
    """A fresh certificate for a registered device (current entitlements, new validity)."""
    proof = body["proof"]
    return _body(runtime().devices.refresh(current_principal().principal_id, device_id,
                                           proof["signed_at"], proof["signature"]))


@blp.route("/<device_id>", methods=["DELETE"])
@require(Role.CITIZEN)
@blp.response(204)
@blp.alt_response(404, **problem_doc("No such device of mine"))
def remove(device_id: str) -> None:
    """Remove a device (lost or sold phone): its unexpired certificates are revoked through the
    revocation feed, so readers deny its codes after their next sync."""
    rt = runtime()
    if rt.devices.remove(current_principal().principal_id, device_id):
        rt.trust_changed()

