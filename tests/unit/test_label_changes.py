"""``gpufleet workers label NAME k=v k2-``: the kubectl grammar of label changes, and how they apply."""

from __future__ import annotations

import re

import pytest

from gpufleet.cli.label_changes import LabelChanges, parse_label_changes

CURRENT = {"os": "linux", "zone": "a", "tier": "gold"}


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["gpu=h100"], {**CURRENT, "gpu": "h100"}),  # added
        (["zone=b"], {**CURRENT, "zone": "b"}),  # changed
        (["zone-"], {"os": "linux", "tier": "gold"}),  # removed
        (["zone-", "tier=silver", "new="], {"os": "linux", "tier": "silver", "new": ""}),  # an empty value is a value
        (["absent-"], CURRENT),  # removing what is not there changes nothing
        (["zone=b", "zone=c"], {**CURRENT, "zone": "c"}),  # the last one wins
    ],
)
def test_changes_apply_to_the_current_labels(args: list[str], expected: dict[str, str]) -> None:
    assert parse_label_changes(args).apply(CURRENT) == expected


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["zone"], "label 'zone' must be key=value (to set it) or key- (to remove it)"),
        (["-"], "label key '' must be"),  # a removal of nothing
        (["bad-=1"], "label key 'bad-' must be"),  # a key ends with a letter or digit
        (["zone=a b"], "label value 'a b' for 'zone' must be"),
        (["url=a=b"], "label value 'a=b' for 'url' must be"),  # the first '=' splits, '=' is no value
        (["zone=a", "zone-"], "label 'zone' is both set and removed"),
    ],
)
def test_bad_changes_name_the_argument(args: list[str], message: str) -> None:
    with pytest.raises(ValueError, match="^" + re.escape(message)):
        parse_label_changes(args)


def test_apply_leaves_the_given_labels_alone() -> None:
    labels = dict(CURRENT)
    LabelChanges(set={"zone": "b"}, remove=("tier",)).apply(labels)
    assert labels == CURRENT
