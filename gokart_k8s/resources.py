"""Resource classes: what a step needs (cpu, memory, GPU, disk) and whether Spot is allowed.

A :class:`ResourceClass` is a frozen, validated value. Quantities use Kubernetes spelling
(``"500m"``, ``"2"``, ``"16Gi"``, ``"1.5G"``) and are checked with the API server's own grammar
(https://kubernetes.io/docs/reference/kubernetes-api/common-definitions/quantity/), because
``kubernetes-validate`` accepts any string where a quantity goes.

A :class:`Catalog` is the team's named classes, defined once per pipeline project in
``luigi.cfg`` (see :mod:`gokart_k8s.settings`), on top of a few built-in classes so a new user
needs no configuration at all.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from gokart_k8s.errors import ConfigurationError, QuantityError

# The grammar of resource.Quantity (k8s.io/apimachinery/pkg/api/resource/quantity.go):
#   <quantity> ::= <signedNumber><suffix>
#   <suffix>   ::= <binarySI> | <decimalExponent> | <decimalSI>
#   <binarySI> ::= Ki | Mi | Gi | Ti | Pi | Ei
#   <decimalSI> ::= m | "" | k | M | G | T | P | E   (n and u are accepted too)
#   <decimalExponent> ::= "e" <signedNumber> | "E" <signedNumber>
_QUANTITY_RE = re.compile(
    r"^(?P<number>[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))"
    r"(?P<suffix>Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E|[eE][+-]?[0-9]+)?$"
)
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


def quantity_value(text: str | int | float) -> Decimal:
    """The value of a Kubernetes quantity (cores for cpu, bytes for memory/disk), sign included.

    Raises :class:`QuantityError` for anything the API server's grammar refuses, such as
    ``"4 GB"``, ``"1Gb"`` or ``"two"``.
    """
    if isinstance(text, bool) or not isinstance(text, (str, int, float)):
        raise QuantityError(f"expected a quantity such as '500m', '2' or '16Gi', got {text!r}")
    return _quantity_of_text(text if isinstance(text, str) else str(text))


@functools.lru_cache(maxsize=4096)
def _quantity_of_text(raw: str) -> Decimal:
    # Memoised: the embedded cluster's scheduler and autoscaler read the same few quantities
    # ("1", "4Gi") of every pod and node on every pass. A Decimal is immutable.
    match = _QUANTITY_RE.match(raw)
    if not match:
        raise QuantityError(
            f"{raw!r} is not a Kubernetes quantity: write a number with an optional suffix and no "
            "space, such as '500m', '2', '1.5G' or '16Gi' (binary: Ki Mi Gi Ti Pi Ei; decimal: m k M G T P E)"
        )
    try:
        number = Decimal(match["number"])
    except InvalidOperation as exc:  # pragma: no cover - the regex admits only valid decimals
        raise QuantityError(f"{raw!r} is not a number") from exc
    suffix = match["suffix"] or ""
    if suffix in _BINARY:
        return number * _BINARY[suffix]
    if suffix in _DECIMAL:
        return number * _DECIMAL[suffix]
    return number * (Decimal(10) ** int(suffix[1:]))


def parse_quantity(text: str | int | float) -> Decimal:
    """A resource amount: a valid quantity (see :func:`quantity_value`) that is not negative."""
    value = quantity_value(text)
    if value < 0:
        raise QuantityError(f"{text!r} is negative; a resource quantity must be zero or more")
    return value


def format_bytes(value: Decimal) -> str:
    """Human-readable bytes in binary units, e.g. ``16Gi``, for tables and messages."""
    for unit, size in (("Ti", 2**40), ("Gi", 2**30), ("Mi", 2**20), ("Ki", 2**10)):
        if value >= size:
            amount = value / size
            return f"{amount:.3g}{unit}" if amount != amount.to_integral_value() else f"{int(amount)}{unit}"
    return str(int(value))


@dataclass(frozen=True)
class ResourceClass:
    """What one step needs.

    Quantities are Kubernetes quantities; they become the container's requests, and for memory,
    GPU and disk also its limits (memory over the limit ends the step ``OOMKilled``; the advice then
    names a bigger class). ``cpu`` is a request only, so a step may burst on an idle node.

    Attributes:
        cpu: CPU cores, e.g. ``"500m"`` or ``"4"``.
        memory: memory, e.g. ``"2Gi"``.
        gpu: number of GPUs (``nvidia.com/gpu``); 0 for none.
        accelerator: GPU type (e.g. ``"nvidia-tesla-t4"``, ``"nvidia-l4"``); required when ``gpu > 0``.
        disk: ephemeral local disk (``ephemeral-storage``), e.g. ``"50Gi"``; ``None`` leaves the
            platform default.
        spot: whether a *tolerant* step of this class may run on Spot capacity. A protected step
            never runs on Spot, whatever this says.
        name: the catalog name; empty for a one-off class given directly to the decorator.
    """

    cpu: str = "1"
    memory: str = "2Gi"
    gpu: int = 0
    accelerator: str | None = None
    disk: str | None = None
    spot: bool = True
    name: str = ""

    def __post_init__(self) -> None:
        label = f"resource class {self.name!r}" if self.name else "resource class"
        for field_name in ("cpu", "memory", "disk"):
            value = getattr(self, field_name)
            if value is None and field_name == "disk":
                continue
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                value = str(value)
                object.__setattr__(self, field_name, value)
            try:
                amount = parse_quantity(value)
            except QuantityError as exc:
                raise QuantityError(f"{label}, field {field_name!r}: {exc}") from None
            if amount <= 0:
                raise QuantityError(f"{label}, field {field_name!r}: must be more than zero, got {value!r}")
        if isinstance(self.gpu, bool) or not isinstance(self.gpu, int) or self.gpu < 0:
            raise QuantityError(f"{label}, field 'gpu': must be a whole number of GPUs (0 or more), got {self.gpu!r}")
        if self.gpu and not self.accelerator:
            raise QuantityError(
                f"{label}: gpu={self.gpu} needs accelerator= (the GPU type, e.g. 'nvidia-tesla-t4' or 'nvidia-l4')"
            )
        if not self.gpu and self.accelerator:
            raise QuantityError(f"{label}: accelerator={self.accelerator!r} is set but gpu is 0; set gpu=1 or more")
        if not isinstance(self.spot, bool):
            raise QuantityError(f"{label}, field 'spot': must be true or false, got {self.spot!r}")

    @property
    def cpu_cores(self) -> Decimal:
        return parse_quantity(self.cpu)

    @property
    def memory_bytes(self) -> Decimal:
        return parse_quantity(self.memory)

    @property
    def disk_bytes(self) -> Decimal | None:
        return None if self.disk is None else parse_quantity(self.disk)

    def named(self, name: str) -> ResourceClass:
        return dataclasses.replace(self, name=name)

    def describe(self) -> str:
        """Short form for tables: ``4 cpu, 32Gi, 1x nvidia-l4``."""
        parts = [f"{self.cpu} cpu", self.memory]
        if self.gpu:
            parts.append(f"{self.gpu}x {self.accelerator}")
        if self.disk:
            parts.append(f"disk {self.disk}")
        return ", ".join(parts)

    def as_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "cpu": self.cpu,
            "memory": self.memory,
            "gpu": self.gpu,
            "accelerator": self.accelerator,
            "disk": self.disk,
            "spot": self.spot,
        }


#: Classes every project has without any configuration. A team's catalog may override them.
BUILTIN_CLASSES: dict[str, ResourceClass] = {
    c.name: c
    for c in (
        ResourceClass(cpu="500m", memory="1Gi", name="small"),
        ResourceClass(cpu="1", memory="4Gi", name="standard"),
        ResourceClass(cpu="8", memory="16Gi", name="highcpu"),
        ResourceClass(cpu="4", memory="32Gi", name="highmem"),
        ResourceClass(cpu="4", memory="16Gi", gpu=1, accelerator="nvidia-tesla-t4", name="gpu-t4"),
        ResourceClass(cpu="8", memory="32Gi", gpu=1, accelerator="nvidia-l4", name="gpu-l4"),
    )
}

#: The class of undecorated steps unless ``[gokart_k8s] default_resources`` says otherwise.
DEFAULT_CLASS = "standard"


class Catalog(Mapping[str, ResourceClass]):
    """The named resource classes of a pipeline project: built-ins plus the team's own."""

    def __init__(self, classes: Mapping[str, ResourceClass] | None = None, *, builtins: bool = True) -> None:
        merged: dict[str, ResourceClass] = dict(BUILTIN_CLASSES) if builtins else {}
        for name, rc in (classes or {}).items():
            merged[name] = rc if rc.name == name else rc.named(name)
        self._classes = merged

    def __getitem__(self, name: str) -> ResourceClass:
        return self._classes[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._classes)

    def __len__(self) -> int:
        return len(self._classes)

    def resolve(self, name: str, *, what: str = "resource class") -> ResourceClass:
        """Look up a class by name, or say which names exist."""
        try:
            return self._classes[name]
        except KeyError:
            known = ", ".join(sorted(self._classes))
            raise ConfigurationError(
                f"unknown {what} {name!r}. Known classes: {known}. Define new ones in luigi.cfg as "
                f"[gokart_k8s.resources.{name}] with cpu=, memory= (and gpu=, accelerator=, disk=, spot=)."
            ) from None
