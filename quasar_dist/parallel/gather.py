"""Collecting one call's results from every rank of a gang, and telling failures apart.

Two kinds of failure, handled differently by the gang:
- RankFailure: a rank died (its actor is gone) or the ranks disagree (one raised, the others did
  not, or not the same way). Peers may be stuck in a collective, so the gang is rebuilt.
- RankMethodError: every rank raised the same exception type. Ranks run the same code on the same
  inputs in lockstep, so this is a deterministic error (bad input, a bug): the gang is still
  consistent and retrying would fail again.
"""
from __future__ import annotations

import time

import ray
from ray.exceptions import RayError, RayTaskError

# After the first rank raised, how long to wait for the others to raise too before calling it a
# RankFailure. Lockstep ranks fail within milliseconds of each other.
PEER_GRACE_S = 5.0


class RankFailure(RuntimeError):
    """A rank died or the ranks disagree; the gang must be torn down and rebuilt."""


class RankMethodError(RuntimeError):
    """Every rank raised the same exception: a deterministic error, the gang is still usable.
    `cause` is rank 0's original exception."""

    def __init__(self, message: str, cause: BaseException | None = None) -> None:
        super().__init__(message)
        self.cause = cause


def one_line(exc: BaseException) -> str:
    if isinstance(exc, RayTaskError) and exc.cause is not None:
        exc = exc.cause
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


def gather_ranks(refs: list[ray.ObjectRef], grace_s: float = PEER_GRACE_S) -> list:
    """Every rank's result in rank order. Returns as soon as a rank is known dead (no waiting
    for its peers, which may be blocked on it until the collective timeout)."""
    results: dict[int, object] = {}
    errors: dict[int, RayTaskError] = {}
    index = {ref: i for i, ref in enumerate(refs)}
    pending, deadline = list(refs), None
    while pending:
        timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
        done, pending = ray.wait(pending, num_returns=1, timeout=timeout)
        if not done:
            break  # grace over: some rank neither finished nor raised
        i = index[done[0]]
        try:
            results[i] = ray.get(done[0])
        except RayTaskError as exc:
            errors[i] = exc
            deadline = deadline or time.monotonic() + grace_s
        except RayError as exc:  # actor died, node lost, object lost
            raise RankFailure(f"rank {i} died: {one_line(exc)}") from exc
    if not errors:
        return [results[i] for i in range(len(refs))]
    first = errors[min(errors)]
    if len(errors) == len(refs) and len({type(e.cause) for e in errors.values()}) == 1:
        raise RankMethodError(one_line(first), first.cause) from first
    raise RankFailure(f"rank {min(errors)} failed: {one_line(first)}") from first
