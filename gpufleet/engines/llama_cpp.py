"""llama.cpp as the control plane sees it: GGUF models on every device type, estimated from the
GGUF header (``estimate/``) for the run settings its flags give (``llama_cpp_flags``); only the
flags of its allow-list (``llama_cpp_allowed``) are accepted."""

from __future__ import annotations

from collections.abc import Sequence

from gpufleet.common.gguf_files import ModelFileError
from gpufleet.engines.base import CannotEstimate
from gpufleet.engines.gguf_location import location_of
from gpufleet.engines.llama_cpp_flags import (
    DEFAULT_PARALLEL,
    BackendParameterError,
    check_backend_parameters,
    parse_backend_parameters,
    run_config_for,
)
from gpufleet.engines.model_format import GGUF
from gpufleet.estimate.gguf import GGUFError
from gpufleet.estimate.loader import load_estimator
from gpufleet.estimate.memory import Estimator
from gpufleet.estimate.model_info import ModelInfoError
from gpufleet.estimate.sources import SourceError
from gpufleet.schemas.models import ModelSpec

ESTIMATE_ERRORS = (ModelFileError, GGUFError, ModelInfoError, SourceError, BackendParameterError, OSError)


class LlamaCpp:
    name = "llama.cpp"
    device_types = frozenset({"cuda", "rocm", "metal", "cpu"})
    model_format = GGUF

    def check_parameters(self, ctx_size: int | None, parameters: Sequence[str]) -> None:
        check_backend_parameters(ctx_size, parameters)

    def parallel_slots(self, parameters: Sequence[str]) -> int:
        try:
            slots = parse_backend_parameters(parameters).get("parallel", DEFAULT_PARALLEL)
        except BackendParameterError:
            return DEFAULT_PARALLEL
        return int(slots) if int(slots) >= 1 else DEFAULT_PARALLEL  # -1: llama-server's "auto"

    def estimator(self, spec: ModelSpec) -> Estimator:
        try:
            # a deployment stored before a flag was refused stays pending, saying which flag
            check_backend_parameters(spec.ctx_size, spec.backend_parameters)
            return load_estimator(location_of(spec), run_config_for(spec.ctx_size, spec.backend_parameters))
        except ESTIMATE_ERRORS as exc:
            raise CannotEstimate(f"cannot estimate the model's memory: {exc}") from exc


LLAMA_CPP = LlamaCpp()
