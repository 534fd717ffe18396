"""Breaking-change detection between two versions of the canonical JSON Schema.

Breaking: a definition or property removed (or renamed, which is a removal), a property that
became required, a type narrowed (a JSON type or enum value no longer accepted, a ref changed).
Adding optional properties, definitions, types or enum values is compatible.
"""

from __future__ import annotations

from typing import Any


def _types(schema: dict[str, Any]) -> set[str]:
    """The JSON types and refs a property schema accepts (anyOf/oneOf flattened)."""
    out: set[str] = set()
    if "$ref" in schema:
        out.add("ref:" + schema["$ref"])
    t = schema.get("type")
    if isinstance(t, str):
        out.add(t)
    elif isinstance(t, list):
        out.update(t)
    if "const" in schema:
        out.add(f"const:{schema['const']!r}")
    for v in schema.get("enum", []):
        out.add(f"enum:{v!r}")
    for key in ("anyOf", "oneOf", "allOf"):
        for sub in schema.get(key, []):
            out |= _types(sub)
    items = schema.get("items")
    if isinstance(items, dict):
        out |= {f"items:{x}" for x in _types(items)}
    return out


def breaking_changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    old_defs: dict[str, Any] = old.get("$defs", {})
    new_defs: dict[str, Any] = new.get("$defs", {})
    for name, odef in old_defs.items():
        ndef = new_defs.get(name)
        if ndef is None:
            problems.append(f"{name}: definition removed")
            continue
        oprops: dict[str, Any] = odef.get("properties", {})
        nprops: dict[str, Any] = ndef.get("properties", {})
        for prop, oschema in oprops.items():
            if prop not in nprops:
                problems.append(f"{name}.{prop}: property removed or renamed")
                continue
            lost = _types(oschema) - _types(nprops[prop])
            if lost:
                problems.append(f"{name}.{prop}: type narrowed (no longer accepts {sorted(lost)})")
        newly_required = set(ndef.get("required", [])) - set(odef.get("required", []))
        for prop in sorted(newly_required):
            problems.append(f"{name}.{prop}: became required")
        lost_top = _types(odef) - _types(ndef)
        if lost_top and "properties" not in odef:
            problems.append(f"{name}: type narrowed (no longer accepts {sorted(lost_top)})")
    return problems
