"""Unit tests of domain.codes: the secrets the flow hands out and how they are stored."""

from __future__ import annotations

import hashlib
import re
import string

import pytest

from authserver.domain import codes

ALPHABET = "BCDFGHJKLMNPQRSTVWXZ"
URLSAFE = set(string.ascii_letters + string.digits + "-_")


# --- user codes -----------------------------------------------------------------------------
def test_alphabet_is_the_rfc_8628_base_20_without_vowels() -> None:
    assert codes.USER_CODE_ALPHABET == ALPHABET
    assert len(set(ALPHABET)) == 20
    assert not set(ALPHABET) & set("AEIOUY")
    assert codes.USER_CODE_LENGTH == 8


def test_new_user_code_is_xxxx_dash_xxxx_from_the_alphabet() -> None:
    pattern = re.compile(f"^[{ALPHABET}]{{4}}-[{ALPHABET}]{{4}}$")
    for _ in range(500):
        code = codes.new_user_code()
        assert pattern.match(code), code


def test_new_user_codes_use_the_whole_alphabet_and_differ() -> None:
    generated = [codes.new_user_code() for _ in range(500)]
    seen = set("".join(generated).replace("-", ""))
    # 4000 draws from 20 letters: missing one has probability ~20 * (19/20)^4000, i.e. never.
    assert seen == set(ALPHABET)
    assert len(set(generated)) == len(generated)


def test_new_user_code_normalizes_to_itself_without_the_dash() -> None:
    code = codes.new_user_code()
    normalized = codes.normalize_user_code(code)
    assert normalized == code.replace("-", "")
    assert codes.format_user_code(normalized) == code


@pytest.mark.parametrize(
    "typed",
    ["WDJB-MJHT", "wdjb mjht", "wdjbmjht", "WDJBMJHT", " wdjb-MJHT ", "wd jb.mj ht", "WDJB_MJHT"],
)
def test_normalize_user_code_ignores_case_and_punctuation(typed: str) -> None:
    assert codes.normalize_user_code(typed) == "WDJBMJHT"


@pytest.mark.parametrize(
    "typed",
    [
        "",
        "----",
        "WDJB-MJH",  # 7 letters
        "WDJB-MJHTB",  # 9 letters
        "WDJA-MJHT",  # vowel A
        "WDJB-MJHE",  # vowel E
        "wdjb-mjhi",  # vowel I, lower case
        "WDJB-MOHT",  # vowel O
        "WDJB-MJHU",  # vowel U
        "WDJB-MJHY",  # Y is not in the alphabet
        "WDJB-MJH1",  # digit
        "WDJB1MJHT",  # a digit is not punctuation to skip
        "12345678",
        "WDJB-MJHÉ",  # non-ASCII letter
    ],
)
def test_normalize_user_code_rejects_what_cannot_be_a_code(typed: str) -> None:
    assert codes.normalize_user_code(typed) is None


def test_format_user_code_splits_in_halves() -> None:
    assert codes.format_user_code("WDJBMJHT") == "WDJB-MJHT"


# --- device codes and tokens ----------------------------------------------------------------
@pytest.mark.parametrize("make", [codes.new_device_code, codes.new_token])
def test_secrets_have_at_least_256_bits_in_urlsafe_chars(make: object) -> None:
    assert callable(make)
    values = [make() for _ in range(200)]
    for value in values:
        # 32 random bytes in unpadded base64url are 43 characters.
        assert len(value) >= 43, value
        assert set(value) <= URLSAFE, value
    assert len(set(values)) == len(values)


def test_device_code_is_not_a_user_code() -> None:
    assert codes.normalize_user_code(codes.new_device_code()) is None


# --- hashing and comparing ------------------------------------------------------------------
def test_hash_secret_is_deterministic_sha256_hex() -> None:
    secret = codes.new_device_code()
    hashed = codes.hash_secret(secret)
    assert hashed == codes.hash_secret(secret)
    assert hashed == hashlib.sha256(secret.encode()).hexdigest()
    assert re.fullmatch(r"[0-9a-f]{64}", hashed)
    assert secret not in hashed


def test_hash_secret_differs_for_different_secrets() -> None:
    assert codes.hash_secret("a") != codes.hash_secret("b")
    assert codes.hash_secret("WDJBMJHT") != codes.hash_secret("WDJB-MJHT")


def test_hash_secret_handles_non_ascii() -> None:
    assert codes.hash_secret("é") == hashlib.sha256("é".encode()).hexdigest()


@pytest.mark.parametrize(
    ("a", "b", "equal"),
    [("abc", "abc", True), ("abc", "abd", False), ("abc", "ab", False), ("", "", True)],
)
def test_secrets_equal(a: str, b: str, equal: bool) -> None:
    assert codes.secrets_equal(a, b) is equal


# --- masking --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "masked"),
    [
        ("Alice Liddell", "A*** L***"),
        ("Alice", "A***"),
        ("  Alice   Pleasance  Liddell ", "A*** P*** L***"),
        ("Émile Zola", "É*** Z***"),
        ("Alice\tLiddell\n", "A*** L***"),
        ("", "***"),
        ("   ", "***"),
    ],
)
def test_mask_name(name: str, masked: str) -> None:
    assert codes.mask_name(name) == masked


def test_mask_name_leaks_only_initials() -> None:
    masked = codes.mask_name("Alice Liddell")
    assert "lice" not in masked
    assert "iddell" not in masked


def test_printable_drops_controls_and_bidi_overrides() -> None:
    from authserver.domain.text import printable

    assert printable("\u202eevil\u202c phone\x85\x07", 50) == "evil phone"
    assert printable("  long name  ", 4) == "long"


# --- client ids -----------------------------------------------------------------------------
def test_client_ids_never_start_with_a_dash(monkeypatch: pytest.MonkeyPatch) -> None:
    """A leading "-" would read as an option on the clients' command lines."""
    drawn = iter(["-leading-dash-000000000", "_fine_and_url_safe_0000"])
    monkeypatch.setattr(codes.secrets, "token_urlsafe", lambda _: next(drawn))
    assert codes.new_client_id() == "_fine_and_url_safe_0000"
    monkeypatch.undo()
    ids = {codes.new_client_id() for _ in range(2000)}
    assert len(ids) == 2000
    assert all(len(i) == 22 and set(i) <= URLSAFE and not i.startswith("-") for i in ids)


# --- number matching ------------------------------------------------------------------------
@pytest.mark.parametrize("number", [10, 42, 99])
def test_match_choices_are_three_distinct_two_digit_numbers_with_the_number(number: int) -> None:
    for seed in ("a" * 64, "b" * 64, codes.hash_secret("device-code")):
        choices = codes.match_choices(number, seed)
        assert number in choices and len(set(choices)) == 3
        assert all(10 <= n <= 99 for n in choices)
        assert codes.match_choices(number, seed) == choices  # the same on every scan


def test_match_choices_put_the_number_anywhere() -> None:
    places = {codes.match_choices(42, codes.hash_secret(str(i))).index(42) for i in range(60)}
    assert places == {0, 1, 2}
