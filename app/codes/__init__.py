"""Codes: the one mint/verify core, pure Python (no Flask), shared by the server and offline readers.

Modules: ``mint`` (sign), ``verify`` (the ``Verifier``), ``decision`` (what it answers),
``errors`` (one exception per reason code), ``messages`` (zh/en texts), ``replay`` and ``trust``
(the stores verification consults), ``jwks`` (keys from a published JWK Set), ``wire`` (format);
``qr`` renders a code as an image.
"""
