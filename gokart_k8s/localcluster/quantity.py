"""Kubernetes resource quantities (``500m``, ``2``, ``16Gi``, ``1e3``) as exact decimals.

The grammar and suffixes are those of ``resource.Quantity``
(https://kubernetes.io/docs/reference/kubernetes-api/common-definitions/quantity/).
"""

from __future__ import annotations

from decimal import Decimal

from gokart_k8s.errors import QuantityError
from gokart_k8s.resources import quantity_value

#: The regular expression the API server quotes when it refuses a quantity.
QUANTITY_PATTERN = r"^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$"


def parse_quantity(text: str | int | float) -> Decimal:
    """The value of a quantity, sign included (the API server checks signs per field); raises
    ``ValueError`` for anything its grammar refuses. One grammar for the whole project:
    :func:`gokart_k8s.resources.quantity_value`."""
    return quantity_value(text)


def is_quantity(text: object) -> bool:
    if not isinstance(text, (str, int, float)):
        return False
    try:
        parse_quantity(text)
    except QuantityError:
        return False
    return True
