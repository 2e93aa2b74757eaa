"""Codes: the one mint/verify core, pure Python (no Flask), shared by the server and offline readers.

Modules: ``mint`` (sign), ``verify`` (the ``Verifier``), ``decision`` (what it answers),
``errors`` (one exception per reason code), ``messages`` (zh/en texts), ``replay`` and ``trust``
(the stores verification consults), ``jwks`` (keys from a published JWK Set), ``wire`` (format);
``qr`` renders a code as an image. Device-bound codes (``CC2:``, minted on the phone):
``device`` (format, certificates, the phone's mint), ``device_verify`` (their part of the
``Verifier``), ``cbor`` (strict CBOR) and ``base45`` (RFC 9285).
"""
