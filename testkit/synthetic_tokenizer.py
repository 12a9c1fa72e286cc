"""Self-contained vocabularies for synthetic GGUF files, in the three forms llama.cpp reads.

llama.cpp refuses a model without a tokenizer and sizes its output layer by the token
count, so a synthetic model needs a full-size vocabulary that its tokenizer code accepts,
built without downloading anything:

* ``"llama"`` (SentencePiece BPE, decoders): ``<unk> <s> </s>``, the 256 byte tokens
  ``<0x00>``..``<0xFF>`` that llama.cpp's byte fallback and newline lookup need, the ChatML
  markers ``<|im_start|> <|im_end|>`` (control tokens, so the chat template tokenizes),
  ``<|endoftext|>`` (llama.cpp looks it up by text when ``general.name`` contains "phi3"
  and fails the load without it), then generated pieces ``▁``, ``▁a``, ``a``, ``▁b``, ... with descending merge scores.
* ``"bert"`` (WordPiece, bert / nomic-bert): ``[PAD] [UNK] [CLS] [SEP] [MASK]`` then
  pieces. In GGUF a word-initial piece carries the ``▁`` prefix and a continuation
  (``##x`` in the Hugging Face vocabulary) is stored bare, as llama.cpp's converter does.
* ``"t5"`` (Unigram, the xlm-roberta variant): ``<s> <pad> </s> <unk>``, pieces, and
  ``<mask>`` last, the XLM-R layout. llama.cpp accepts it without
  ``tokenizer.ggml.precompiled_charsmap`` (normalisation is then the identity), so the
  reranker keeps the real tokenizer type rather than falling back to WordPiece.

Pieces are lowercase letter strings of growing length, so every token is unique (llama.cpp
asserts that) and the list is built in well under a second even for 262 144 tokens.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field

from gguf import TokenType

from testkit.synthetic_presets import ModelShape

_ALPHABET = "abcdefghijklmnopqrstuvwxyz"
SPACE = "\u2581"  # SentencePiece's visible space, "▁"

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


@dataclass(frozen=True)
class Vocab:
    """A tokenizer as GGUF stores it: the ``tokenizer.ggml.*`` keys llama.cpp's vocab loader reads."""

    model: str  # tokenizer.ggml.model
    tokens: list[str]
    scores: list[float]
    types: list[int]
    special_ids: dict[str, int]  # "bos" / "eos" / "unk" / "sep" / "pad" / "mask" -> token id
    add_bos: bool
    add_eos: bool
    add_sep: bool = False
    token_type_count: int | None = None  # BERT segment types (token_types tensor rows)
    chat_template: str | None = None
    extra_flags: dict[str, bool] = field(default_factory=dict)


def _pieces(count: int, prefixes: tuple[str, ...]) -> list[str]:
    """``count`` distinct pieces: every lowercase word of length 1, 2, ... under each prefix."""

    def generate() -> Iterator[str]:
        for length in itertools.count(1):
            for combo in itertools.product(_ALPHABET, repeat=length):
                word = "".join(combo)
                for prefix in prefixes:
                    yield prefix + word

    return list(itertools.islice(generate(), max(count, 0)))


def _need(shape: ModelShape, fixed: int, kind: str) -> int:
    """Room left for generated pieces; a vocabulary smaller than its fixed tokens cannot be built."""
    room = shape.n_vocab - fixed
    if room < 2 * len(_ALPHABET):
        raise ValueError(f"n_vocab {shape.n_vocab} is too small for a {kind} vocabulary (need at least {fixed + 52})")
    return room


def spm_vocab(shape: ModelShape) -> Vocab:
    """SentencePiece ("llama") vocabulary with byte fallback and ChatML control tokens, for decoders."""
    chat = ["<|im_start|>", "<|im_end|>", "<|endoftext|>"]
    fixed = ["<unk>", "<s>", "</s>", *(f"<0x{b:02X}>" for b in range(256)), *chat, SPACE]
    types = [TokenType.UNKNOWN, TokenType.CONTROL, TokenType.CONTROL, *[TokenType.BYTE] * 256]
    types += [TokenType.CONTROL] * len(chat) + [TokenType.NORMAL]
    pieces = _pieces(_need(shape, len(fixed), "SentencePiece"), (SPACE, ""))
    n_pieces = len(pieces)
    return Vocab(
        model="llama",
        tokens=fixed + pieces,
        # Higher scores merge first: short, early pieces win, so text always tokenizes.
        scores=[0.0] * len(fixed) + [-float(i) for i in range(1, n_pieces + 1)],
        types=[int(t) for t in types] + [int(TokenType.NORMAL)] * n_pieces,
        special_ids={"bos": 1, "eos": 2, "unk": 0},
        add_bos=True,
        add_eos=False,
        chat_template=CHATML_TEMPLATE,
    )


def wpm_vocab(shape: ModelShape) -> Vocab:
    """WordPiece ("bert") vocabulary: BERT's five special tokens, then word-start and continuation pieces."""
    fixed = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    pieces = _pieces(_need(shape, len(fixed), "WordPiece"), (SPACE, ""))
    return Vocab(
        model="bert",
        tokens=fixed + pieces,
        scores=[0.0] * (len(fixed) + len(pieces)),
        types=[int(TokenType.CONTROL)] * len(fixed) + [int(TokenType.NORMAL)] * len(pieces),
        special_ids={"pad": 0, "unk": 1, "bos": 2, "sep": 3, "mask": 4},  # [CLS] is BERT's "bos"
        add_bos=True,
        add_eos=False,
        add_sep=True,
        token_type_count=2,
    )


def ugm_vocab(shape: ModelShape) -> Vocab:
    """Unigram ("t5") vocabulary laid out like XLM-RoBERTa's: ``<s> <pad> </s> <unk>`` ... ``<mask>``.

    ``add_sep`` makes llama.cpp join a rerank pair as ``<s> query </s></s> document </s>``,
    the XLM-R sentence-pair format.
    """
    head = ["<s>", "<pad>", "</s>", "<unk>"]
    pieces = _pieces(_need(shape, len(head) + 1, "Unigram"), (SPACE, ""))
    control, normal = int(TokenType.CONTROL), int(TokenType.NORMAL)
    return Vocab(
        model="t5",
        tokens=[*head, *pieces, "<mask>"],
        # Unigram scores are log-probabilities; any negative, decreasing values give a valid Viterbi path.
        scores=[0.0] * len(head) + [-1.0 - i / len(pieces) for i in range(len(pieces))] + [0.0],
        types=[control, control, control, int(TokenType.UNKNOWN)] + [normal] * len(pieces) + [control],
        special_ids={"bos": 0, "pad": 1, "eos": 2, "sep": 2, "unk": 3, "mask": shape.n_vocab - 1},
        add_bos=True,
        add_eos=True,
        add_sep=True,
        token_type_count=1,
        extra_flags={"add_space_prefix": True, "remove_extra_whitespaces": True},
    )


def vocab_for(shape: ModelShape) -> Vocab:
    """The tokenizer a real model of this arch ships with, in synthetic form."""
    if shape.variant == "xlm-roberta":
        return ugm_vocab(shape)
    if shape.is_encoder:
        return wpm_vocab(shape)
    return spm_vocab(shape)
