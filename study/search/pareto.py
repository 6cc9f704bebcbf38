"""Pruning a two-objective (``--pareto``) study: asynchronous successive halving by
non-dominated sorting.

Optuna cannot prune a multi-objective study (``trial.report`` raises; optuna#3450), so this
pruner keeps its own record. At each rung (epochs 1, 3, 9, ... : ``MIN_RESOURCE`` times
powers of ``REDUCTION_FACTOR``) a trial writes its pair (its validation metric, its second
objective) to the trial attribute ``pareto_rungs``, and is ranked among every trial of the
study that reached that rung:

1. by front: non-dominated sorting of the pairs (both objectives as minimised);
2. within a front, by crowding distance, larger first (the ends of a front are infinite,
   as in NSGA-II): a trial where the front is sparse is worth more than one in a crowd;
3. equal distances by the metric, then by trial number (earlier first).

It goes on if it lies on the first front, or among the top ``1/REDUCTION_FACTOR`` of that
order (at least one); else it is pruned. As with Optuna's asynchronous successive halving,
a trial is judged against whoever has reached the rung by then, so early trials meet little
competition. The second objective (parameter count or latent size) is known before
training; ``kl`` is measured each epoch like the metric.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

RUNG_ATTR = "pareto_rungs"  # {"1": [metric, second], "3": [...]}: what the pruner saw
VALUES_ATTR = "pruned_values"  # a pruned trial's [metric, second] when it stopped
NAME = "pareto-halving"
MIN_RESOURCE = 1
REDUCTION_FACTOR = 3


def rung_epochs(max_epochs: int) -> list[int]:
    """The epochs at which trials are judged: 1, 3, 9, ... below ``max_epochs``."""
    out, e = [], MIN_RESOURCE
    while e < max_epochs:
        out.append(e)
        e *= REDUCTION_FACTOR
    return out


def dominates(a: Sequence[float], b: Sequence[float]) -> bool:
    """Whether ``a`` is no worse than ``b`` in every objective and better in one (minimised)."""
    return all(x <= y for x, y in zip(a, b, strict=True)) and any(
        x < y for x, y in zip(a, b, strict=True)
    )


def fronts(points: list[Sequence[float]]) -> list[list[int]]:
    """Indices of ``points`` by non-dominated front, the first front first."""
    left = set(range(len(points)))
    out = []
    while left:
        front = sorted(i for i in left if not any(dominates(points[j], points[i]) for j in left))
        out.append(front)
        left -= set(front)
    return out


def crowding(points: list[Sequence[float]], front: list[int]) -> dict[int, float]:
    """NSGA-II's crowding distance of each point of one front (its ends: infinity)."""
    distance = dict.fromkeys(front, 0.0)
    if len(front) <= 2:
        return dict.fromkeys(front, math.inf)
    for k in range(len(points[front[0]])):
        ordered = sorted(front, key=lambda i: points[i][k])
        lo, hi = points[ordered[0]][k], points[ordered[-1]][k]
        distance[ordered[0]] = distance[ordered[-1]] = math.inf
        if hi == lo:
            continue
        for before, i, after in zip(ordered, ordered[1:], ordered[2:], strict=False):
            distance[i] += (points[after][k] - points[before][k]) / (hi - lo)
    return distance


def ranking(points: list[Sequence[float]], numbers: list[int]) -> tuple[list[int], set[int]]:
    """The order of ``points`` (front, crowding distance, metric, number) and the indices of
    the first front."""
    order = []
    all_fronts = fronts(points)
    for front in all_fronts:
        distance = crowding(points, front)
        order += sorted(front, key=lambda i: (-distance[i], points[i][0], numbers[i]))
    return order, set(all_fronts[0]) if all_fronts else set()


def keeps(points: list[Sequence[float]], numbers: list[int], me: int) -> bool:
    """Whether the trial at index ``me`` goes on past this rung."""
    order, first = ranking(points, numbers)
    top = max(1, len(points) // REDUCTION_FACTOR)
    return me in first or order.index(me) < top


def minimised(values: Sequence[float], directions: Sequence[str]) -> tuple[float, ...]:
    return tuple(v if d == "minimize" else -v for v, d in zip(values, directions, strict=True))


class ParetoHalving:
    """Judges one trial of a two-objective study at its rungs (see the module docstring)."""

    def __init__(self, study, trial, *, max_epochs: int, directions: Sequence[str]):
        self.study, self.trial, self.directions = study, trial, list(directions)
        self.rungs = set(rung_epochs(max_epochs))
        self.seen: dict[str, list[float]] = dict(trial.user_attrs.get(RUNG_ATTR, {}))

    def __call__(self, epoch: int, values: Sequence[float]) -> str | None:
        """After ``epoch`` with ``values`` (metric, second objective): why the trial is
        pruned, or None to go on."""
        if epoch not in self.rungs:
            return None
        self.seen[str(epoch)] = [float(v) for v in values]
        self.trial.set_user_attr(RUNG_ATTR, self.seen)
        points, numbers = [], []
        me = None
        for t in self.study.get_trials(deepcopy=False):
            pair = self.seen[str(epoch)] if t.number == self.trial.number else (
                t.user_attrs.get(RUNG_ATTR, {}).get(str(epoch)))  # fmt: skip
            if pair is None:
                continue
            if t.number == self.trial.number:
                me = len(points)
            points.append(minimised(pair, self.directions))
            numbers.append(t.number)
        if me is None or keeps(points, numbers, me):
            return None
        self.trial.set_user_attr(VALUES_ATTR, self.seen[str(epoch)])
        order, _ = ranking(points, numbers)
        return (
            f"pruned after epoch {epoch} ({NAME}): ranked {order.index(me) + 1} of "
            f"{len(points)} trials at this rung, off the first front"
        )
