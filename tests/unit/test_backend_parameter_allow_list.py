"""llama.cpp's allow-list of ``backend_parameters`` (issue 12, finding 9): tuning passes, anything
that writes files, opens ports, changes keys or contradicts gpufleet is refused by name."""

from __future__ import annotations

import pytest

from gpufleet.engines import ENGINES
from gpufleet.engines.llama_cpp_allowed import ALLOWED_FLAGS, BY_SPELLING
from gpufleet.engines.llama_cpp_flags import (
    PLACEMENT_FLAGS,
    SWITCHES,
    VALUE_FLAGS,
    BackendParameterError,
    check_backend_parameters,
    flag_pairs,
    run_config_for,
)
from gpufleet.worker.engines.llama_cpp import user_parameters


@pytest.mark.parametrize(
    "flag",
    [
        "--log-file",
        "--api-key",
        "--api-key-file",
        "--ssl-key-file",
        "--path",
        "--slot-save-path",
        "--chat-template-file",
        "--lora",
        "--mmproj",
        "--tools",
        "--props",
        "--metrics",
        "--cache-ram",
        "-lv",
        "--override-kv",
        "-ot",
        "--cpu-moe",
        "-hf",
        "--no-such-flag",
    ],
)
def test_flags_off_the_list_are_refused_by_name(flag: str) -> None:
    with pytest.raises(BackendParameterError, match=f"^{flag} is not an allowed llama.cpp flag; allowed: ") as raised:
        ENGINES["llama.cpp"].check_parameters(None, ["--temp", "0.5", flag, "x"])
    assert raised.value.status_code == 422


def test_placement_flags_keep_their_own_advice() -> None:
    for flag in ("-ngl", "--host", "--port"):
        with pytest.raises(BackendParameterError, match=f"^{flag} is set by gpufleet from the placement"):
            check_backend_parameters(None, [flag, "1"])
    assert not PLACEMENT_FLAGS & set(BY_SPELLING)


@pytest.mark.parametrize(
    ("parameters", "pairs"),
    [
        (["--temp=0.2"], [("--temp", "0.2")]),
        (["--temp 0.2"], [("--temp", "0.2")]),
        (["--reasoning-budget", "-1"], [("--reasoning-budget", "-1")]),  # a negative value is a value
        (["--seed=-1", "--jinja"], [("--seed", "-1"), ("--jinja", None)]),
        # a chat template is a value with spaces and '=' in it: split at the first of either
        (["--chat-template {% if a == b %}x{% endif %}"], [("--chat-template", "{% if a == b %}x{% endif %}")]),
        (["--chat-template", "a = b"], [("--chat-template", "a = b")]),
    ],
)
def test_flags_and_values_are_read_as_llama_cpp_reads_them(
    parameters: list[str], pairs: list[tuple[str, str | None]]
) -> None:
    assert flag_pairs(parameters) == pairs


@pytest.mark.parametrize(
    ("parameters", "message"),
    [
        (["0.2"], "'0.2' follows no flag that takes a value"),
        (["--jinja", "yes"], "'yes' follows no flag that takes a value"),
        (["--temp"], "backend parameter --temp needs a value"),
        (["--temp", ""], "contains an empty parameter"),
    ],
)
def test_malformed_parameters_say_what_is_wrong(parameters: list[str], message: str) -> None:
    with pytest.raises(BackendParameterError, match=message):
        check_backend_parameters(None, parameters)


@pytest.mark.parametrize("flag", [["-c", "1000000000"], ["--ctx-size=8192"], ["--ctx-size 8192"]])
def test_a_context_size_in_both_places_is_a_conflict_not_a_silent_drop(flag: list[str]) -> None:
    with pytest.raises(BackendParameterError, match="conflicts with ctx_size"):
        check_backend_parameters(4096, flag)
    check_backend_parameters(None, flag)  # alone, it is the context size


def test_the_memory_flags_are_on_the_list() -> None:
    assert set(VALUE_FLAGS) | set(SWITCHES) <= set(BY_SPELLING)


def test_every_allowed_spelling_is_accepted() -> None:
    values = {"-ctk": "q8_0", "-ctv": "q8_0", "-fa": "on", "-lm": "mlock"}  # checked values; a number elsewhere
    for flag in ALLOWED_FLAGS:
        value = values.get(flag.spellings[0], "1")
        for spelling in flag.spellings:
            check_backend_parameters(None, [spelling, value] if flag.takes_value else [spelling])


@pytest.mark.parametrize(("mode", "mmap"), [("auto", True), ("mmap+mlock", True), ("none", False), ("dio", False)])
def test_the_load_mode_tells_the_estimate_whether_the_file_is_mapped(mode: str, mmap: bool) -> None:
    assert run_config_for(None, ["--load-mode", mode]).mmap is mmap
    with pytest.raises(BackendParameterError, match="--load-mode takes one of auto, mmap"):
        check_backend_parameters(None, ["--load-mode", "sometimes"])
    with pytest.raises(BackendParameterError, match=r"--no-mmap is not an allowed llama\.cpp flag"):
        check_backend_parameters(None, ["--no-mmap"])  # the pinned llama-server refuses it


def test_the_worker_refuses_a_stored_flag_too_and_passes_the_rest_in_order() -> None:
    assert user_parameters(["-np", "2", "--temp=0.2", "--jinja", "--reasoning-budget", "-1"]) == [
        "--temp",
        "0.2",
        "--jinja",
        "--reasoning-budget",
        "-1",
    ]
    with pytest.raises(BackendParameterError, match="--log-file is not an allowed"):
        user_parameters(["--log-file", "/tmp/x"])
