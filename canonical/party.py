"""Customers and addresses, with the normalisation that customer matching relies on."""

from __future__ import annotations

import re

from pydantic import Field, field_validator

from canonical.base import Canonical


def normalise_email(email: str | None) -> str | None:
    if email is None:
        return None
    e = email.strip().lower()
    return e or None


def normalise_phone(phone: str | None) -> str | None:
    """Digits only, keeping a leading '+': good enough to match the same number written twice."""
    if phone is None:
        return None
    p = phone.strip()
    plus = p.startswith("+")
    digits = re.sub(r"\D", "", p)
    if not digits:
        return None
    return ("+" if plus else "") + digits


class Address(Canonical):
    name: str | None = None
    company: str | None = None
    line1: str
    line2: str | None = None
    city: str
    region: str | None = Field(default=None, description="state/province code, e.g. CA")
    postal_code: str | None = None
    country: str = Field(description="ISO 3166-1 alpha-2")
    phone: str | None = None

    @field_validator("country")
    @classmethod
    def _iso_country(cls, v: str) -> str:
        if not re.fullmatch(r"[A-Z]{2}", v):
            raise ValueError("country must be an ISO 3166-1 alpha-2 code such as 'US'")
        return v


class Customer(Canonical):
    external_id: str | None = Field(default=None, description="the channel's customer id; None for guests")
    email: str | None = None
    phone: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    guest: bool = False

    @field_validator("email")
    @classmethod
    def _email(cls, v: str | None) -> str | None:
        e = normalise_email(v)
        if e is not None and "@" not in e:
            raise ValueError(f"not an email address: {v!r}")
        return e

    @field_validator("phone")
    @classmethod
    def _phone(cls, v: str | None) -> str | None:
        return normalise_phone(v)

    @property
    def display_name(self) -> str:
        name = " ".join(p for p in (self.first_name, self.last_name) if p)
        return name or self.email or self.phone or "guest"
