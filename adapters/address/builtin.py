"""The builtin address check: required fields and postal code formats per country.

Deliberately simple and offline: it catches what a person would catch at a glance (a missing
street, a US ZIP with four digits, a Canadian postal code in the wrong shape). Countries not
in the table only need a street, a city and a country.
"""

from __future__ import annotations

import re

from canonical import Address
from canonical.documents import AddressCheck

# Postal code format per country (upper-cased, surrounding spaces removed before matching).
POSTAL_FORMATS: dict[str, tuple[str, str]] = {
    "US": (r"\d{5}(-\d{4})?", "5 digits, or ZIP+4 (12345-6789)"),
    "CA": (r"[A-Z]\d[A-Z] ?\d[A-Z]\d", "A1A 1A1"),
    "GB": (r"[A-Z]{1,2}\d[A-Z\d]? ?\d[A-Z]{2}", "e.g. SW1A 1AA"),
    "DE": (r"\d{5}", "5 digits"),
    "FR": (r"\d{5}", "5 digits"),
    "ES": (r"\d{5}", "5 digits"),
    "IT": (r"\d{5}", "5 digits"),
    "NL": (r"\d{4} ?[A-Z]{2}", "1234 AB"),
    "AU": (r"\d{4}", "4 digits"),
    "JP": (r"\d{3}-?\d{4}", "123-4567"),
    "KW": (r"\d{5}", "5 digits"),
}
# Countries whose carriers need the state or province.
REGION_REQUIRED = frozenset({"US", "CA", "AU"})


def check_address(address: Address | None) -> AddressCheck:
    """Every reason the address cannot be shipped to as written (none: it passes)."""
    if address is None:
        return AddressCheck(ok=False, reasons=["no shipping address"])
    reasons: list[str] = []
    if not address.line1.strip():
        reasons.append("street (line1) is missing")
    if not address.city.strip():
        reasons.append("city is missing")
    country = address.country
    if country in REGION_REQUIRED and not (address.region or "").strip():
        reasons.append(f"region (state/province) is required in {country}")
    fmt = POSTAL_FORMATS.get(country)
    postal = (address.postal_code or "").strip().upper()
    if fmt is not None:
        pattern, example = fmt
        if not postal:
            reasons.append(f"postal code is required in {country}")
        elif not re.fullmatch(pattern, postal):
            reasons.append(f"postal code {address.postal_code!r} is not a {country} postal code ({example})")
    return AddressCheck(ok=not reasons, reasons=reasons)


class BuiltinAddressCheck:
    name = "builtin"

    async def check(self, address: Address | None) -> AddressCheck:
        return check_address(address)
