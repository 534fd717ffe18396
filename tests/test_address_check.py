"""The builtin address check: required fields and postal code formats per country."""

from __future__ import annotations

import pytest

from adapters.address.builtin import check_address
from canonical import Address


def _addr(country: str, postal: str | None, region: str | None = None) -> Address:
    return Address(line1="1 Main St", city="Town", country=country, postal_code=postal, region=region)


@pytest.mark.parametrize(
    ("country", "postal", "region"),
    [
        ("US", "94105", "CA"),
        ("US", "94105-1234", "CA"),
        ("CA", "k1a 0b1", "ON"),
        ("GB", "SW1A 1AA", None),
        ("DE", "10115", None),
        ("JP", "100-0001", None),
        ("NZ", None, None),  # not in the table: street, city and country are enough
    ],
)
def test_well_formed_addresses_pass(country: str, postal: str | None, region: str | None) -> None:
    assert check_address(_addr(country, postal, region)).ok


def test_every_reason_is_given() -> None:
    result = check_address(Address(line1=" ", city="", country="US", postal_code="9410"))
    assert not result.ok
    assert result.reasons == [
        "street (line1) is missing",
        "city is missing",
        "region (state/province) is required in US",
        "postal code '9410' is not a US postal code (5 digits, or ZIP+4 (12345-6789))",
    ]


def test_a_missing_address_or_postal_code_fails() -> None:
    assert check_address(None).reasons == ["no shipping address"]
    assert check_address(_addr("DE", None)).reasons == ["postal code is required in DE"]
