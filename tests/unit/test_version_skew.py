"""The version-skew rule (``common.version_skew``), one row per case: same major and minor versions
at most one apart join (a warning when they differ); anything else is refused, saying which side
to upgrade and to what. 0.x releases follow the same rule (the minor version is the unit)."""

from __future__ import annotations

import pytest

from gpufleet.common.version_skew import Release, Skew, VersionSkew, check, judge

# (worker, server, verdict, words the message must hold)
CASES = [
    ("0.1.0", "0.1.0", Skew.SAME, ""),
    ("0.1.7", "0.1.0", Skew.SAME, ""),  # the patch level never matters
    ("0.1.0.dev3+g1234", "0.1.2", Skew.SAME, ""),
    ("0.2.0", "0.1.0", Skew.ONE_MINOR, "the worker is newer): upgrade the other side to 0.2"),
    ("0.0.9", "0.1.0", Skew.ONE_MINOR, "the server is newer): upgrade the other side to 0.1"),
    ("1.4.0rc1", "1.3.2", Skew.ONE_MINOR, "one minor version apart"),
    # newer worker: upgrade the server, or run a version the server accepts (its own or one above)
    (
        "0.3.0",
        "0.1.0",
        Skew.TOO_FAR,
        "worker gpufleet 0.3.0 cannot join server gpufleet 0.1.0: upgrade the server to 0.3, "
        "or run gpufleet 0.1 or 0.2 on the worker",
    ),
    # older worker: upgrade the worker (never "downgrade the server")
    (
        "0.1.0",
        "0.3.0",
        Skew.TOO_FAR,
        "worker gpufleet 0.1.0 cannot join server gpufleet 0.3.0: upgrade the worker to gpufleet 0.2 or 0.3",
    ),
    # another major version is refused even when the minor numbers are close
    (
        "1.0.0",
        "0.9.0",
        Skew.TOO_FAR,
        "upgrade the server to 1.0, or run gpufleet 0.9 or 0.10 on the worker",
    ),
    ("0.9.3", "1.0.0", Skew.TOO_FAR, "upgrade the worker to gpufleet 1.0"),  # no 1.-1 to offer
    ("1.2.0", "2.2.0", Skew.TOO_FAR, "upgrade the worker to gpufleet 2.1 or 2.2"),
    # not a version: cannot be judged, so not refused (simulated workers of tests and benchmarks)
    ("test", "0.1.0", Skew.UNKNOWN, "cannot tell whether worker gpufleet 'test'"),
    ("0.1.0", "dev", Skew.UNKNOWN, "server gpufleet 'dev'"),
]


@pytest.mark.parametrize(("worker", "server", "skew", "words"), CASES)
def test_judge(worker: str, server: str, skew: Skew, words: str) -> None:
    verdict = judge(worker, server)
    assert verdict.skew == skew
    assert words in verdict.message
    assert verdict.accepted == (skew != Skew.TOO_FAR)
    if skew == Skew.SAME:
        assert verdict.message == ""


@pytest.mark.parametrize(("worker", "server", "skew", "words"), CASES)
def test_check_raises_409_only_for_a_refusal(worker: str, server: str, skew: Skew, words: str) -> None:
    if skew != Skew.TOO_FAR:
        assert check(worker, server).skew == skew
        return
    with pytest.raises(VersionSkew) as caught:
        check(worker, server)
    assert caught.value.status_code == 409 and caught.value.code == "version_skew"
    assert words in caught.value.message


@pytest.mark.parametrize(
    ("text", "release"),
    [("0.3.1", Release(0, 3)), ("v1.12", Release(1, 12)), ("2.0.0rc1", Release(2, 0)), ("1", None), ("x.y", None)],
)
def test_release_parse(text: str, release: Release | None) -> None:
    assert Release.parse(text) == release
