"""Check that the wheels carried to the GPU machine cover gpufleet's dependencies there.

The device machine (``/work/.library/device``) has no network: what its image lacks travels as
wheels in ``.whl/``, installed with ``pip install --no-deps --target``, so pip checks nothing
there. This walks the requirement graph itself, for Linux x86-64 CPython 3.12 (the device's
``python3``), from ``pyproject.toml``'s ``[project].dependencies``:

- a requirement met by a carried wheel must match its version specifier, and the wheel's own
  ``Requires-Dist`` (markers evaluated for that platform, extras followed) is walked in turn;
- a requirement met by a package of the image (``KINDS.md``'s package list) is accepted; its
  version is checked where ``KINDS.md``'s pip-list row gives one, else reported as unchecked;
- anything else is missing. Two wheels of one package are an error too (they stop the install).

    python benchmarks/gpu_truth_wheels.py [--wheels .whl] [--kinds KINDS.md]   # here, before a run
    python3 benchmarks/gpu_truth_wheels.py --installed                          # there, after the install

``--installed`` checks the live environment instead (``importlib.metadata``, so PYTHONPATH's
``--target`` folder counts). Exit status 1 when anything is missing or conflicts.
"""

from __future__ import annotations

import argparse
import re
import sys
import tomllib
import zipfile
from collections.abc import Iterator
from email.parser import Parser
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name, parse_wheel_filename
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
KINDS = Path("/work/.library/device/KINDS.md")
KIND = "nvidia-h200"
DEVICE_ENV = {
    "python_version": "3.12",
    "python_full_version": "3.12.3",
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
    "sys_platform": "linux",
    "platform_system": "Linux",
    "platform_machine": "x86_64",
    "os_name": "posix",
}


def root_requirements() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return [Requirement(line) for line in project["dependencies"]]


def applies(requirement: Requirement, extras: frozenset[str]) -> bool:
    """Whether ``requirement`` counts on the device, for a parent installed with ``extras``."""
    if requirement.marker is None:
        return True
    return any(requirement.marker.evaluate({**DEVICE_ENV, "extra": extra}) for extra in extras or {""})


def image_packages(kinds: Path) -> tuple[set[str], dict[str, Version]]:
    """KINDS.md's package names for the kind, and the versions its pip-list row gives."""
    text = kinds.read_text()
    listed = re.search(rf"^{re.escape(KIND)}: .*?Packages: (.*?)\.$", text, re.MULTILINE | re.DOTALL)
    if listed is None:
        raise SystemExit(f"{kinds}: no package list for {KIND}")
    names = {canonicalize_name(name.strip()) for name in listed.group(1).split(",")}
    versions: dict[str, Version] = {}
    row = re.search(r"^\| pip list, as a session saw it \|(.*)$", text, re.MULTILINE)
    for name, version in re.findall(r"([A-Za-z0-9_.-]+) (\d+(?:\.\d+)+[\w.+]*)", row.group(1) if row else ""):
        versions[canonicalize_name(name)] = Version(version)
    return names, versions


def wheel_requirements(wheel: Path) -> list[Requirement]:
    with zipfile.ZipFile(wheel) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        message = Parser().parsestr(archive.read(name).decode())
    return [Requirement(line) for line in message.get_all("Requires-Dist") or []]


def walk_carried(wheels: Path, kinds: Path) -> Iterator[str]:
    """Problems, one line each; informational lines start with ``note:``."""
    carried: dict[str, tuple[Version, Path]] = {}
    for wheel in sorted(wheels.glob("*.whl")):
        name, version, _, _ = parse_wheel_filename(wheel.name)
        if name in carried:
            yield f"two wheels of {name}: {carried[name][1].name} and {wheel.name} (keep one)"
        carried[name] = (version, wheel)
    image, known = image_packages(kinds)
    pending = [(r, "gpufleet") for r in root_requirements()]
    seen: set[tuple[str, str]] = set()
    used: set[str] = set()
    while pending:
        requirement, parent = pending.pop()
        name = canonicalize_name(requirement.name)
        if (name, str(requirement.specifier)) in seen:
            continue
        seen.add((name, str(requirement.specifier)))
        if name in carried:
            version, wheel = carried[name]
            used.add(name)
            if not requirement.specifier.contains(version, prereleases=True):
                yield f"{parent} needs {requirement}, the carried wheel is {version}"
            extras = frozenset(requirement.extras)
            pending += [(r, name) for r in wheel_requirements(wheel) if applies(r, extras)]
        elif name in image:
            if name in known and not requirement.specifier.contains(known[name], prereleases=True):
                yield f"{parent} needs {requirement}, the image has {known[name]}: carry a wheel"
            elif requirement.specifier and name not in known:
                yield f"note: {parent} needs {requirement}; the image's version is not recorded (unchecked)"
        else:
            yield f"{parent} needs {requirement}: neither carried nor in the image"
    for name in sorted(set(carried) - used):
        yield f"note: {carried[name][1].name} is carried but nothing needs it"


def walk_installed() -> Iterator[str]:
    pending = [(r, "gpufleet") for r in root_requirements()]
    seen: set[str] = set()
    while pending:
        requirement, parent = pending.pop()
        if str(requirement) in seen:
            continue
        seen.add(str(requirement))
        try:
            dist = metadata.distribution(requirement.name)
        except metadata.PackageNotFoundError:
            yield f"{parent} needs {requirement}: not installed"
            continue
        if not requirement.specifier.contains(dist.version, prereleases=True):
            yield f"{parent} needs {requirement}, installed is {dist.version}"
        extras = frozenset(requirement.extras)
        pending += [(r, requirement.name) for r in map(Requirement, dist.requires or []) if applies(r, extras)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--wheels", type=Path, default=ROOT / ".whl")
    parser.add_argument("--kinds", type=Path, default=KINDS)
    parser.add_argument("--installed", action="store_true", help="check this environment instead")
    options = parser.parse_args()
    lines = list(walk_installed() if options.installed else walk_carried(options.wheels, options.kinds))
    for line in lines:
        print(line)
    problems = [line for line in lines if not line.startswith("note:")]
    if not options.installed:
        total = sum(w.stat().st_size for w in options.wheels.glob("*.whl"))
        print(f"{len(list(options.wheels.glob('*.whl')))} wheels, {total / 2**20:.1f} MiB")
    print("OK" if not problems else f"{len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
