"""Which files of a hub repository a deployment needs: the GGUF its glob picks, and its shards.

``huggingface_filename`` / ``modelscope_file_path`` is a glob (an exact name matches itself),
matched against each file's path and its base name; without one, the repository's first GGUF.
Among matches the first shard of a split model (``-00001-of-0000N.gguf``) is preferred, and a
split model needs every one of its shards, all in one directory, so llama.cpp finds them next to
the first. When nothing matches, the error lists what the repository has, so a typo is obvious.
"""

from __future__ import annotations

import re

from gpufleet.common.gguf_files import ModelFileError, first_gguf

SHARD = re.compile(r"^(?P<stem>.*)-(?P<index>\d{5})-of-(?P<count>\d{5})\.gguf$")
LISTED = 30  # names shown when nothing matches


def needed_files(names: list[str], pattern: str | None, where: str) -> list[str]:
    """The file to load first, then the other shards of a split model; raises ``ModelFileError``."""
    glob = pattern or "*.gguf"
    try:
        first = first_gguf(names, glob, where)
    except ModelFileError:
        raise ModelFileError(f"no GGUF file matching {glob!r} in {where}; {_contents(names)}") from None
    shard = SHARD.match(first)
    if shard is None:
        return [first]
    count = int(shard["count"])
    wanted = [f"{shard['stem']}-{index:05d}-of-{shard['count']}.gguf" for index in range(1, count + 1)]
    missing = [name for name in wanted if name not in set(names)]
    if missing:
        raise ModelFileError(f"{first} is split into {count} files but {where} lacks {', '.join(missing)}")
    return wanted


def _contents(names: list[str]) -> str:
    if not names:
        return "it has no files"
    ggufs = sorted(n for n in names if n.endswith(".gguf"))
    shown = ggufs or sorted(names)
    more = f" and {len(shown) - LISTED} more" if len(shown) > LISTED else ""
    kind = "GGUF files" if ggufs else "no GGUF file at all, only"
    return f"it has {kind}: {', '.join(shown[:LISTED])}{more}"
