"""Kubernetes resource quantities (``500m``, ``2``, ``16Gi``, ``1e3``) as exact decimals.

The grammar and suffixes are those of ``resource.Quantity``
(https://kubernetes.io/docs/reference/kubernetes-api/common-definitions/quantity/).
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

#: The regular expression the API server quotes when it refuses a quantity.
QUANTITY_PATTERN = r"^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$"
_NUMBER = re.compile(r"^([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))(.*)$")
_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "": Decimal(1),
    "k": Decimal("1e3"),
    "M": Decimal("1e6"),
    "G": Decimal("1e9"),
    "T": Decimal("1e12"),
    "P": Decimal("1e15"),
    "E": Decimal("1e18"),
}
_EXPONENT = re.compile(r"^[eE]([+-]?[0-9]+)$")


def parse_quantity(text: str | int | float) -> Decimal:
    """The value of a quantity; raises ``ValueError`` for anything the API server would refuse."""
    if isinstance(text, bool):
        raise ValueError(f"quantity {text!r} is a boolean")
    if isinstance(text, (int, float)):
        return Decimal(str(text))
    match = _NUMBER.match(text.strip())
    if not match or text != text.strip():
        raise ValueError(f"quantity {text!r} does not match {QUANTITY_PATTERN}")
    number, suffix = match.groups()
    try:
        value = Decimal(number)
    except InvalidOperation as exc:  # pragma: no cover - the regex admits only decimals
        raise ValueError(f"quantity {text!r} is not a number") from exc
    if suffix in _BINARY:
        return value * _BINARY[suffix]
    if suffix in _DECIMAL:
        return value * _DECIMAL[suffix]
    exp = _EXPONENT.match(suffix)
    if exp:
        return value * (Decimal(10) ** int(exp.group(1)))
    raise ValueError(f"quantity {text!r} has an unknown suffix {suffix!r}")


def is_quantity(text: object) -> bool:
    if not isinstance(text, (str, int, float)):
        return False
    try:
        parse_quantity(text)
    except ValueError:
        return False
    return True
