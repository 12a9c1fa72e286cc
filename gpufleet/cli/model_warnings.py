"""Warnings about a deployment, printed as yellow lines on stderr.

A create or an update is accepted even when not every replica fits (the rest wait, pending); the
answer's ``warnings`` say so, and the person must see them. They go to stderr so that ``--json``
on stdout stays parseable.
"""

from __future__ import annotations

from rich.markup import escape

from gpufleet.cli.client import err


def print_warnings(warnings: list[str]) -> None:
    for warning in warnings:
        err.print(f"[yellow]warning: {escape(warning)}[/]")
