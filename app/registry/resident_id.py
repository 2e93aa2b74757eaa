"""GB 11643-1999 resident ID numbers: 6-digit region, 8-digit birth date, 3-digit sequence, check char."""
from __future__ import annotations

from datetime import date

_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK = "10X98765432"
# First two digits: provinces, autonomous regions and municipalities (GB/T 2260).
_PROVINCES = frozenset({
    11, 12, 13, 14, 15, 21, 22, 23, 31, 32, 33, 34, 35, 36, 37, 41, 42, 43, 44, 45, 46,
    50, 51, 52, 53, 54, 61, 62, 63, 64, 65, 71, 81, 82,
})


def check_char(first17: str) -> str:
    """The 18th character for the first 17 digits (ISO 7064 MOD 11-2)."""
    return _CHECK[sum(int(d) * w for d, w in zip(first17, _WEIGHTS)) % 11]


def problems(number: str, *, today: date | None = None) -> list[str]:
    """Everything wrong with ``number``; an empty list means it is a plausible resident ID."""
    today = today or date.today()
    if len(number) != 18 or not number[:17].isdigit() or not number[:17].isascii():
        return ["must be 17 digits followed by a digit or X"]
    if number[17] not in "0123456789X":
        return ["the last character must be a digit or X"]
    found = []
    if int(number[:2]) not in _PROVINCES or number[2:6] == "0000":
        found.append("the region code is not a valid administrative division")
    try:
        born = date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
    except ValueError:
        found.append("the birth date is not a real date")
    else:
        if born.year < 1900 or born > today:
            found.append("the birth date is not plausible")
    if check_char(number[:17]) != number[17]:
        found.append("the check character does not match")
    return found


def normalise(number: str) -> str:
    return number.strip().upper()


def mask(number: str) -> str:
    """Show region and the check character only: ``370202**********1X`` style."""
    return number[:6] + "*" * 10 + number[-2:] if len(number) == 18 else "*" * len(number)
