"""Where the web UI's built files are, and building them from a source tree when they are stale.

A wheel or sdist of gpufleet carries the built UI in ``gpufleet/ui`` (``npm run build`` in ``ui/``
writes there; git ignores it). Run from a source tree (an editable install), ``gpufleet start``
first rebuilds the UI when ``gpufleet/ui/index.html`` is missing or older than any source file
in ``ui/``, provided npm is installed: ``npm ci`` (when ``node_modules`` is missing or older than
the lockfile) and ``npm run build``, once, under a file lock so that servers started together
build it once. Without npm the server answers ``/`` with a page saying how to build it, and the
start banner says so too.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

PACKAGE_DIR = Path(__file__).resolve().parent.parent
BUILT_DIR = PACKAGE_DIR / "ui"
SOURCE_DIR = PACKAGE_DIR.parent / "ui"  # present in a source tree only
SOURCE_FILES = ("index.html", "package.json", "package-lock.json", "vite.config.ts", "tsconfig.json")
SOURCE_DIRS = ("src", "public")
HOW_TO_BUILD = "install Node.js 20 (with npm), then run: cd ui && npm ci && npm run build (or make run)"
BUILD_TIMEOUT = 900.0


@dataclass(frozen=True)
class UiAssets:
    """Where the built UI is, or why there is none (``problem``: what to do, for the page and the banner)."""

    directory: Path
    problem: str | None = None

    @property
    def index(self) -> Path:
        return self.directory / "index.html"

    @property
    def available(self) -> bool:
        return self.problem is None and self.index.is_file()


def built_assets(built: Path = BUILT_DIR) -> UiAssets:
    """The build as it is, without building."""
    if (built / "index.html").is_file():
        return UiAssets(built)
    return UiAssets(built, f"the web UI is not built: {HOW_TO_BUILD}")


def _source_files(source: Path) -> Iterator[Path]:
    for name in SOURCE_FILES:
        path = source / name
        if path.is_file():
            yield path
    for name in SOURCE_DIRS:
        folder = source / name
        if folder.is_dir():
            yield from (p for p in folder.rglob("*") if p.is_file())


def is_stale(source: Path, built: Path) -> bool:
    """The built ``index.html`` is missing or older than a source file."""
    index = built / "index.html"
    if not index.is_file():
        return True
    built_at = index.stat().st_mtime
    return any(path.stat().st_mtime > built_at for path in _source_files(source))


@contextmanager
def _exclusive(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (POSIX; Windows builds without one)."""
    with path.open("w") as handle:
        if sys.platform != "win32":
            import fcntl  # POSIX only

            fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def _npm(source: Path) -> list[str] | None:
    """How to run npm: the source tree's ``scripts/npm.sh`` (a recent enough Node.js, else the one from
    PyPI in this venv), else npm on PATH; None without either."""
    script = source.parent / "scripts" / "npm.sh"
    bash = shutil.which("bash")
    if script.is_file() and bash is not None:
        return [bash, str(script), sys.prefix]
    npm = shutil.which("npm")
    return [npm] if npm is not None else None


def _needs_install(source: Path) -> bool:
    installed = source / "node_modules" / ".package-lock.json"
    lockfile = source / "package-lock.json"
    return not installed.is_file() or (lockfile.is_file() and lockfile.stat().st_mtime > installed.stat().st_mtime)


def _run(command: list[str], source: Path) -> str | None:
    """None when it worked, else what failed (the command and its last output lines)."""
    try:
        done = subprocess.run(command, cwd=source, capture_output=True, text=True, timeout=BUILD_TIMEOUT)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{' '.join(command)}: {exc}"
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
        return f"{' '.join(command)} exited with {done.returncode}:\n{tail}"
    return None


def ensure_built(source: Path = SOURCE_DIR, built: Path = BUILT_DIR) -> UiAssets:
    """The UI to serve; from a source tree, built first when stale and npm is there. Blocking (minutes at most)."""
    if not (source / "package.json").is_file():  # an installed package: its assets are what it has
        return built_assets(built)
    if not is_stale(source, built):
        return UiAssets(built)
    npm = _npm(source)
    if npm is None:
        problem = "the web UI is not built" if not (built / "index.html").is_file() else None
        if problem is None:
            logger.warning("the web UI in %s is older than its sources, and npm is missing to rebuild it", built)
            return UiAssets(built)
        return UiAssets(built, f"{problem}: {HOW_TO_BUILD}")
    with _exclusive(source / ".build.lock"):  # another gpufleet starting now waits for this build, then skips it
        if not is_stale(source, built):
            return UiAssets(built)
        logger.warning("building the web UI from %s (once after its sources change; about a minute)", source)
        failed = (_run([*npm, "ci", "--no-audit", "--no-fund"], source) if _needs_install(source) else None) or _run(
            [*npm, "run", "build"], source
        )
    if failed is not None:
        logger.error("could not build the web UI: %s", failed)
        return UiAssets(built, f"the web UI could not be built ({failed.splitlines()[0]}): {HOW_TO_BUILD}")
    logger.info("built the web UI into %s", built)
    return UiAssets(built)
