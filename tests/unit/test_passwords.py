"""scrypt password hashes: self-describing, salted, verified in constant time."""

from __future__ import annotations

from authserver.services.passwords import hash_password, verify_password


def test_round_trip_and_wrong_password() -> None:
    stored = hash_password("correct horse", p=1)
    assert verify_password("correct horse", stored)
    assert not verify_password("correct horsE", stored)


def test_hash_records_its_parameters_and_is_salted() -> None:
    first, second = hash_password("same", p=1), hash_password("same", p=2)
    assert first.split("$")[:4] == ["scrypt", str(2**15), "8", "1"]
    assert second.split("$")[3] == "2"
    assert first.split("$")[4] != second.split("$")[4]  # a fresh salt each time
    assert verify_password("same", second)  # verification uses the hash's own p


def test_malformed_or_foreign_hashes_never_verify() -> None:
    for stored in ("", "plain", "bcrypt$x$y$z$a$b", "scrypt$n$8$1$salt$digest"):
        assert not verify_password("anything", stored)
