"""The shared listener checks (taskstream.infra.security): bind addresses, tokens."""

from __future__ import annotations

from pathlib import Path

import pytest

from taskstream.infra.security import (
    Exposure,
    InsecureConfigurationError,
    TokenChecker,
    check_exposure,
    load_tokens,
)


def _exposure(host: str, tokens: tuple[str, ...] = (), insecure: bool = False) -> Exposure:
    return Exposure("the monitor", "TASKSTREAM_MONITOR", host, tokens, insecure)


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "localhost"])
def test_loopback_needs_no_token(host: str) -> None:
    check_exposure(_exposure(host))


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.2", "monitor"])
def test_any_other_address_needs_tokens_or_insecure(host: str) -> None:
    with pytest.raises(InsecureConfigurationError) as refused:
        check_exposure(_exposure(host))
    message = str(refused.value)
    assert host in message and "TASKSTREAM_MONITOR_TOKENS" in message
    assert "TASKSTREAM_MONITOR_INSECURE=true" in message and "TASKSTREAM_API" not in message
    check_exposure(_exposure(host, ("t",)))
    check_exposure(_exposure(host, insecure=True))


def test_tokens_come_inline_and_from_a_file(tmp_path: Path) -> None:
    file = tmp_path / "tokens"
    file.write_text("# rotated monthly\nfrom-file\n\n  spaced  \n")
    assert load_tokens([" inline ", ""], file, "TASKSTREAM_MONITOR") == [
        "inline",
        "from-file",
        "spaced",
    ]
    with pytest.raises(InsecureConfigurationError, match="TASKSTREAM_MONITOR_TOKENS_FILE"):
        load_tokens([], tmp_path / "missing", "TASKSTREAM_MONITOR")


def test_the_checker_wants_a_bearer_with_a_known_token() -> None:
    checker = TokenChecker(["alpha", "beta"], "TASKSTREAM_MONITOR")
    assert checker.allows("Bearer alpha") and checker.allows(b"bearer beta")
    for header in (None, "", "alpha", "Basic alpha", "Bearer alph", "Bearer alphaa", "Bearer "):
        assert not checker.allows(header), header
    assert checker.refusal()["error"] == "unauthorized"
    assert "TASKSTREAM_MONITOR_TOKENS" in checker.refusal()["message"]
    assert TokenChecker([], "X").allows(None), "no tokens configured: no authentication"
