"""The committed JSON Schema guards the canonical model against silent breaking changes."""

import copy
import json

from canonical import SCHEMA_VERSION
from canonical.compat import breaking_changes
from canonical.schema import SCHEMA_PATH, current_schema


def _major(v: str) -> int:
    return int(v.split(".")[0])


def test_committed_schema_matches_models_or_change_is_compatible() -> None:
    committed = json.loads(SCHEMA_PATH.read_text())
    current = current_schema(SCHEMA_VERSION)
    problems = breaking_changes(committed, current)
    if problems:
        assert _major(SCHEMA_VERSION) > _major(committed["version"]), (
            "breaking change to the canonical model without a major SCHEMA_VERSION bump:\n  "
            + "\n  ".join(problems)
        )
    assert committed == current, (
        "canonical models changed compatibly: regenerate the committed schema with "
        "`python -c 'import canonical.schema as s; s.dump()'`"
    )


def test_detector_flags_removed_renamed_narrowed_and_required() -> None:
    base = current_schema(SCHEMA_VERSION)
    removed = copy.deepcopy(base)
    del removed["$defs"]["OrderLine"]["properties"]["sku"]
    assert any("OrderLine.sku" in p for p in breaking_changes(base, removed))

    narrowed = copy.deepcopy(base)
    narrowed["$defs"]["OrderLine"]["properties"]["sku"] = {"type": "string"}
    assert any("type narrowed" in p for p in breaking_changes(base, narrowed))

    required = copy.deepcopy(base)
    required["$defs"]["Order"]["required"].append("note")
    assert any("Order.note: became required" in p for p in breaking_changes(base, required))

    enum_narrowed = copy.deepcopy(base)
    kinds = enum_narrowed["$defs"]["OrderDiscount"]["properties"]["kind"]
    kinds["enum"] = kinds["enum"][:-1]
    assert breaking_changes(base, enum_narrowed)


def test_detector_accepts_additions() -> None:
    base = current_schema(SCHEMA_VERSION)
    added = copy.deepcopy(base)
    added["$defs"]["Order"]["properties"]["loyalty_id"] = {"type": "string"}
    assert breaking_changes(base, added) == []
