"""The ``k=v`` / ``k-`` arguments of ``gpufleet workers label`` (kubectl's grammar), and how they
change a label map.

``PATCH /api/workers/{id}`` replaces the whole map, so the command reads the current labels,
applies the changes here and sends the result. Invariants: an argument is either ``key=value``
(set) or ``key-`` (remove), checked with the same grammar the server uses
(``common.labels.validate_label``) before anything is sent; one key may not be both set and
removed in one command; removing a key that is absent is not an error (nothing to do).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gpufleet.common.labels import validate_label


@dataclass(frozen=True)
class LabelChanges:
    set: dict[str, str] = field(default_factory=dict)
    remove: tuple[str, ...] = ()

    def apply(self, labels: dict[str, str]) -> dict[str, str]:
        """``labels`` with the removals and then the settings applied (``labels`` is not changed)."""
        kept = {key: value for key, value in labels.items() if key not in self.remove}
        return {**kept, **self.set}


def parse_label_changes(args: list[str]) -> LabelChanges:
    """``["gpu=h100", "zone-"]`` → set ``gpu=h100``, remove ``zone``; ``ValueError`` names the bad argument."""
    changes: dict[str, str] = {}
    removals: list[str] = []
    for arg in args:
        if "=" in arg:
            key, value = arg.split("=", 1)
            validate_label(key, value)
            changes[key] = value
        elif arg.endswith("-"):
            key = arg[:-1]
            validate_label(key, "")
            removals.append(key)
        else:
            raise ValueError(f"label {arg!r} must be key=value (to set it) or key- (to remove it)")
    both = sorted(set(changes) & set(removals))
    if both:
        raise ValueError(f"label {both[0]!r} is both set and removed")
    return LabelChanges(set=changes, remove=tuple(removals))
