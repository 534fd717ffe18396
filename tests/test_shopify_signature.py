"""Shopify webhook signatures, checked against the contract's independent test vector."""

from __future__ import annotations

import base64

from adapters.channels.shopify.signature import sign, verify

# shared/contracts/shopify.md, from Shopify/shopify-app-js validate.test.ts
SECRET = "test_secret_key"
BODY = b'{"foo": "bar"}'
EXPECTED = "B23tXN681gZ0qIWNRrgtzBE9XSDo5yaUu6wfmhu3a7g="


def test_sign_matches_the_contract_test_vector() -> None:
    assert len(BODY) == 14
    assert sign(BODY, SECRET) == EXPECTED
    assert len(EXPECTED) == 44 and base64.b64decode(EXPECTED, validate=True)


def test_verify_accepts_the_vector_and_tolerates_surrounding_whitespace() -> None:
    assert verify(BODY, EXPECTED, [SECRET])
    assert verify(BODY, f" {EXPECTED}\r\n", [SECRET])


def test_verify_runs_on_the_raw_bytes_not_reserialised_json() -> None:
    assert not verify(b'{"foo":"bar"}', EXPECTED, [SECRET])  # same JSON, no space: other bytes
    assert not verify(BODY + b"\n", EXPECTED, [SECRET])


def test_verify_refuses_a_wrong_secret_or_a_tampered_signature() -> None:
    assert not verify(BODY, EXPECTED, ["another_secret"])
    tampered = ("A" if EXPECTED[0] != "A" else "B") + EXPECTED[1:]
    assert not verify(BODY, tampered, [SECRET])
    assert not verify(BODY, EXPECTED.lower(), [SECRET])  # base64 is case-sensitive


def test_verify_accepts_old_and_new_secret_during_rotation() -> None:
    new = "shpss_rotated_secret"
    assert verify(BODY, EXPECTED, [new, SECRET])  # still signed with the old one
    assert verify(BODY, sign(BODY, new), [new, SECRET])
    assert not verify(BODY, EXPECTED, [new])  # rotation finished: the old one no longer counts


def test_missing_header_empty_secrets_and_garbage_are_never_valid() -> None:
    assert not verify(BODY, None, [SECRET])
    assert not verify(BODY, "", [SECRET])
    assert not verify(BODY, EXPECTED, [])
    assert not verify(BODY, sign(BODY, ""), [""])  # a blank key is a misconfiguration
    assert not verify(BODY, "not base64 at all \u00e9", [SECRET])  # non-ASCII: False, not an exception


def test_a_single_string_is_one_secret_not_its_characters() -> None:
    assert verify(BODY, EXPECTED, SECRET)
    assert not verify(BODY, sign(BODY, "t"), SECRET)
