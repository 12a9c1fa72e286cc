"""Scoring across workers: the fewer bytes a placement puts on subordinates, the better.

A distributed placement runs llama-server on its main worker; every other worker (a subordinate)
serves its devices over llama.cpp RPC. What a subordinate holds is what crosses the network: its
weights are sent to it at load, and its KV cache and compute stay behind a network hop at every
token. For a placement ``p``, let ``b_sub(p)`` be the bytes its subordinates hold (the sum of their
claims: weights, KV cache and buffers on their GPUs, or on their CPUs when those are lent). Then
placements are ordered by::

    key(p) = (b_sub(p), −score(p), worker name, device ids)      # smallest first

where ``score`` is the resource-allocation score (``resource_allocation.py``, spread or binpack,
0..100, rounded to 6 decimals). So among distributed placements the one keeping the most on its main
worker wins (for one set of hosts, the main worker is then the one holding the largest share), and
spread/binpack only break ties, such as between workers that look the same. A placement on one
worker has ``b_sub = 0``: the key orders those exactly as the score alone did.
"""

from __future__ import annotations

from gpufleet.scheduler.framework import Placement


def subordinate_bytes(placement: Placement) -> int:
    """``b_sub``: bytes held by the workers lending devices over RPC (0 for a placement on one worker)."""
    return sum(sum(s.claim.by_device(s.worker_name).values()) for s in placement.subordinates)
