"""Reading a channel's JSON payload with the path of every problem (shared by the mappers).

Each reader raises MappingError naming where in the vendor's payload the problem is
(``line_items[2].price: missing``), which the API returns as a 422 with that path."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar, cast

from pydantic import BaseModel, ValidationError

from adapters.channels.errors import MappingError
from canonical import Money

Json = dict[str, Any]
M = TypeVar("M", bound=BaseModel)


def at(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def why(err: ValidationError) -> str:
    return "; ".join(str(e["msg"]).removeprefix("Value error, ") for e in err.errors())


def build(path: str, model: type[M], **fields: Any) -> M:
    """Construct a canonical model, reporting its refusal at the vendor's path."""
    try:
        return model(**fields)
    except ValidationError as err:
        raise MappingError(path, why(err)) from None


def obj(value: Any, path: str) -> Json:
    if not isinstance(value, dict):
        raise MappingError(path, f"expected an object, got {type(value).__name__}")
    return cast(Json, value)


def required(d: Json, key: str, path: str) -> Any:
    value = d.get(key)
    if value is None:
        raise MappingError(at(path, key), "missing")
    return value


def objects(d: Json, key: str, path: str) -> list[Json]:
    """An optional list of objects (absent or null means empty)."""
    value = d.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise MappingError(at(path, key), f"expected a list, got {type(value).__name__}")
    return [obj(item, at(at(path, key), i)) for i, item in enumerate(value)]


def text(d: Json, key: str, path: str) -> str | None:
    """An optional string; blank means absent."""
    value = d.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise MappingError(at(path, key), f"expected a string, got {type(value).__name__}")
    return value.strip() or None


def flag(d: Json, key: str, path: str, default: bool) -> bool:
    value = d.get(key)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise MappingError(at(path, key), f"expected true or false, got {value!r}")
    return value


def check_total(path: str, stated: Money | None, computed: Money, what: str) -> None:
    """A total the vendor states must be what its parts add up to."""
    if stated is not None and stated != computed:
        raise MappingError(path, f"is {stated} but {what} add up to {computed}")


def ident(d: Json, key: str, path: str) -> str:
    """A vendor's integer id (JSON number or string), kept as text in the canonical model."""
    value = required(d, key, path)
    if isinstance(value, bool) or not isinstance(value, int | str) or not str(value).strip():
        raise MappingError(at(path, key), f"expected an integer id, got {value!r}")
    return str(value).strip()


def decimal(value: Any, path: str, what: str, *, numbers: bool = False) -> Decimal:
    """A decimal from a string (or an int); JSON floats only where ``numbers`` allows them (rates
    and percentages some vendors send as numbers), as the shortest decimal that round-trips
    (0.0725, not 0.07249999...)."""
    if isinstance(value, bool) or (isinstance(value, float) and not numbers):
        raise MappingError(path, f"expected {what} as a decimal string, got {value!r}")
    try:
        if isinstance(value, str):
            result = Decimal(value.strip())
        elif isinstance(value, int):
            result = Decimal(value)
        elif isinstance(value, float):
            result = Decimal(str(value))
        else:
            raise MappingError(path, f"expected {what}, got {type(value).__name__}")
    except InvalidOperation:
        raise MappingError(path, f"expected {what}, got {value!r}") from None
    if not result.is_finite():
        raise MappingError(path, f"expected {what}, got {value!r}")
    return result


def timestamp(d: Json, key: str, path: str) -> datetime | None:
    """An optional ISO-8601 timestamp, which must carry its UTC offset."""
    value = d.get(key)
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        raise MappingError(at(path, key), f"expected an ISO-8601 timestamp, got {value!r}")
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise MappingError(at(path, key), f"not an ISO-8601 timestamp: {value!r}") from None
    if when.tzinfo is None:
        raise MappingError(at(path, key), f"timestamp without a UTC offset: {value!r}")
    return when


def quantity(d: Json, path: str) -> int:
    """A line's ``quantity``: a positive integer."""
    q = d.get("quantity")
    if isinstance(q, bool) or not isinstance(q, int) or q <= 0:
        raise MappingError(at(path, "quantity"), f"expected a positive integer, got {q!r}")
    return q
