"""``read_config_file``: what a YAML file may say, and how a mistake in it is reported."""

from __future__ import annotations

from pathlib import Path

import pytest

from gpufleet.config import Settings
from gpufleet.config_file import ConfigFileError, read_config_file

FIELDS = set(Settings.model_fields)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "gpufleet.yaml"
    path.write_text(text)
    return path


def test_keys_take_dashes_or_underscores_and_paths_are_relative_to_the_file(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "worker-port: 9002\nlog_level: debug\ndata-dir: data\ndevice_inventory: /abs/inv.json\n"
        "labels: {gpu: 4090, zone: a}\nsystem-reserved: {ram: 1}\n",
    )
    assert read_config_file(path, FIELDS) == {
        "worker_port": 9002,
        "log_level": "debug",
        "data_dir": tmp_path.resolve() / "data",
        "device_inventory": Path("/abs/inv.json"),
        "labels": {"gpu": "4090", "zone": "a"},  # YAML's number 4090 becomes the label value "4090"
        "system_reserved": {"ram": 1},
    }


def test_an_empty_file_sets_nothing(tmp_path: Path) -> None:
    assert read_config_file(write(tmp_path, "# nothing yet\n"), FIELDS) == {}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("bogus: 1\n", "'bogus' is not a setting"),
        ("config-file: other.yaml\n", "'config-file' is not a setting"),  # start's own options are not settings
        ("worker-port: 1\nworker_port: 2\n", "'worker_port' is given twice"),
        ("- port\n- 8080\n", "must be a mapping of settings"),
        ("port: [1\n", "not valid YAML (line 2)"),
    ],
)
def test_mistakes_name_the_file_and_what_to_fix(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigFileError) as caught:
        read_config_file(path, FIELDS)
    assert str(caught.value).startswith(f"--config-file {path}: ")
    assert message in str(caught.value)


def test_a_missing_file_says_so(tmp_path: Path) -> None:
    with pytest.raises(ConfigFileError, match="No such file"):
        read_config_file(tmp_path / "absent.yaml", FIELDS)


def test_file_values_sit_below_the_environment_and_the_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GPUFLEET_HOST", "127.0.0.3")
    settings_class = Settings.with_config_file({"port": 9000, "host": "127.0.0.2", "log_level": "debug"})
    settings = settings_class(log_level="error")
    assert (settings.port, settings.host, settings.log_level) == (9000, "127.0.0.3", "ERROR")
    assert Settings().port == 8080  # the plain class never sees another call's file


def test_tls_files_given_with_a_tilde_are_the_files_served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    for name in ("key.pem", "cert.pem"):
        (tmp_path / name).write_text("pem")
    settings = Settings(ssl_keyfile=Path("~/key.pem"), ssl_certfile=Path("~/cert.pem"))
    assert (settings.ssl_keyfile, settings.ssl_certfile) == (tmp_path / "key.pem", tmp_path / "cert.pem")
