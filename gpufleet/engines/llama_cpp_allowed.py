"""Which llama-server flags a deployment's ``backend_parameters`` may carry: an allow-list.

``backend_parameters`` reach a process that runs as the worker's user on the worker's machine,
so only tuning is let through: sampling defaults, threads, batch and cache sizes, RoPE scaling,
chat templates given as values, reasoning output. Everything else is refused by name, and in
particular what would

- write or read files (``--log-file``, ``--slot-save-path``, ``--chat-template-file``, ``--lora``…),
- open ports or endpoints (``--host``, ``--port``, ``--path``, ``--props``, ``--tools``…),
- change keys (``--api-key``, ``--api-key-file``, ``--ssl-key-file``),
- contradict what gpufleet sets (``--metrics``, ``--cache-ram``, ``--fit``, ``-lv``) or the
  placement (``-ngl``, ``--tensor-split``, ``--override-tensor``, ``--cpu-moe``, and
  ``--override-kv``, which can change the model's shape that the memory estimate was made for).

Spellings follow llama.cpp's ``common/arg.cpp``. A flag is allowed with all of its spellings.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Flag:
    spellings: tuple[str, ...]
    takes_value: bool

    @property
    def name(self) -> str:
        """The spelling shown in messages: the first long one."""
        return next((s for s in self.spellings if s.startswith("--")), self.spellings[0])


def _values(*groups: tuple[str, ...]) -> list[Flag]:
    return [Flag(spellings, True) for spellings in groups]


def _switches(*groups: tuple[str, ...]) -> list[Flag]:
    return [Flag(spellings, False) for spellings in groups]


MEMORY = _values(
    ("-np", "--parallel"),
    ("-c", "--ctx-size"),
    ("-b", "--batch-size"),
    ("-ub", "--ubatch-size"),
    ("-ctk", "--cache-type-k"),
    ("-ctv", "--cache-type-v"),
    ("-fa", "--flash-attn"),
    ("-lm", "--load-mode"),  # none | mmap | mlock | mmap+mlock | dio | auto
) + _switches(
    ("-kvu", "--kv-unified"),
    ("-no-kvu", "--no-kv-unified"),
    ("--swa-full",),
)
SAMPLING = _values(
    ("--temp", "--temperature"),
    ("--top-k",),
    ("--top-p",),
    ("--min-p",),
    ("--top-nsigma", "--top-n-sigma"),
    ("--typical", "--typical-p"),
    ("--xtc-probability",),
    ("--xtc-threshold",),
    ("--repeat-last-n",),
    ("--repeat-penalty",),
    ("--presence-penalty",),
    ("--frequency-penalty",),
    ("--dry-multiplier",),
    ("--dry-base",),
    ("--dry-allowed-length",),
    ("--dry-penalty-last-n",),
    ("--dry-sequence-breaker",),
    ("--dynatemp-range",),
    ("--dynatemp-exp",),
    ("--mirostat",),
    ("--mirostat-lr",),
    ("--mirostat-ent",),
    ("--samplers",),
    ("--sampler-seq", "--sampling-seq"),
    ("-s", "--seed"),
    ("-n", "--predict", "--n-predict"),
    ("--keep",),
) + _switches(("--ignore-eos",))
THREADS_AND_BATCHING = _values(
    ("-t", "--threads"),
    ("-tb", "--threads-batch"),
    ("--threads-http",),
    ("--numa",),
    ("-dt", "--defrag-thold"),
    ("--cache-reuse",),
    ("-sps", "--slot-prompt-similarity"),
    ("-to", "--timeout"),
) + _switches(
    ("-cb", "--cont-batching"),
    ("-nocb", "--no-cont-batching"),
    ("--warmup",),
    ("--no-warmup",),
    ("--context-shift",),
    ("--no-context-shift",),
    ("--cache-prompt",),
    ("--no-cache-prompt",),
)
ROPE = _values(
    ("--rope-scaling",),
    ("--rope-scale",),
    ("--rope-freq-base",),
    ("--rope-freq-scale",),
    ("--yarn-orig-ctx",),
    ("--yarn-ext-factor",),
    ("--yarn-attn-factor",),
    ("--yarn-beta-slow",),
    ("--yarn-beta-fast",),
)
CHAT = _values(
    ("--chat-template",),  # a built-in template's name or the template itself; never a file
    ("--chat-template-kwargs",),
    ("--reasoning-format",),
    ("--reasoning-budget",),
    ("--pooling",),
) + _switches(
    ("--jinja",),
    ("--no-jinja",),
    ("-sp", "--special"),
    ("--spm-infill",),
)

ALLOWED_FLAGS: tuple[Flag, ...] = (*MEMORY, *SAMPLING, *THREADS_AND_BATCHING, *ROPE, *CHAT)
BY_SPELLING: dict[str, Flag] = {spelling: flag for flag in ALLOWED_FLAGS for spelling in flag.spellings}
ALLOWED_NAMES = ", ".join(sorted(flag.name for flag in ALLOWED_FLAGS))
