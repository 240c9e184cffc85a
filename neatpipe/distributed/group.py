"""A group of actors that do the same work: a batch is cut into contiguous spans, each span goes to an
actor, and the answers are put back in input order.

A span counts only once its answer is back. When an actor dies in the middle, Ray restarts it and sends
the call again (``max_task_retries``); only when Ray gives the actor up (its restarts are spent, its node
is gone) does the span go back to the queue for the other actors. A failure of the work itself (a model
error) is raised as the error the actor raised.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from neatpipe.distributed.cluster import EngineError, import_ray

Progress = Callable[[int, int], None]  # progress(done, total)


class ActorGroup:
    """Actors with the same methods. ``weights`` say how much of a batch each takes at a time (a node's
    sandbox workers); ``rounds`` cuts a batch into about that many spans per actor when there are several
    (a slow span then holds up less), and ``depth`` spans wait at each actor so that none idles."""

    def __init__(
        self,
        actors: Sequence[Any],
        weights: Sequence[float] | None = None,
        *,
        name: str,
        rounds: int = 1,
        depth: int = 1,
    ) -> None:
        if not actors:
            raise ValueError("an actor group needs at least one actor")
        self.actors: list[Any | None] = list(actors)
        self.weights = [float(w) for w in (weights or [1.0] * len(actors))]
        self.name = name
        self.rounds = rounds
        self.depth = depth
        self.lost = 0  # actors given up by Ray (restarts spent or node gone): a health figure

    @property
    def live(self) -> list[int]:
        return [i for i, a in enumerate(self.actors) if a is not None]

    def _span_size(self, slot: int, total: int) -> int:
        live = self.live
        rounds = self.rounds if len(live) > 1 else 1
        share = self.weights[slot] / sum(self.weights[i] for i in live)
        return max(1, math.ceil(total * share / rounds))

    def map(self, method: str, items: Sequence[Any], progress: Progress | None = None) -> list[Any]:
        """``actor.method(span)`` over contiguous spans of ``items``; the answers joined in input order."""
        ray = import_ray()
        from ray.exceptions import ActorDiedError, ActorUnschedulableError, RayActorError, RayTaskError

        gone = (ActorDiedError, ActorUnschedulableError)  # Ray gave the actor up: restarts spent, node gone

        total = len(items)
        results: list[Any] = [None] * total
        redo: deque[tuple[int, int]] = deque()  # spans whose actor was given up
        cursor = 0
        inflight: dict[Any, tuple[int, int, int]] = {}  # object ref -> (actor slot, start, end)
        load = [0] * len(self.actors)
        done = 0

        def take(slot: int) -> tuple[int, int] | None:
            nonlocal cursor
            if redo:
                return redo.popleft()
            if cursor >= total:
                return None
            span = (cursor, min(total, cursor + self._span_size(slot, total)))
            cursor = span[1]
            return span

        def fill() -> None:
            for slot in self.live:
                while load[slot] < self.depth:
                    span = take(slot)
                    if span is None:
                        return
                    ref = getattr(self.actors[slot], method).remote(list(items[span[0] : span[1]]))
                    inflight[ref] = (slot, *span)
                    load[slot] += 1

        fill()
        while inflight:
            ready, _ = ray.wait(list(inflight), num_returns=1)
            slot, start, end = inflight.pop(ready[0])
            load[slot] -= 1
            try:
                answer = ray.get(ready[0])
            except RayTaskError as exc:  # the work failed in the actor: raise what it raised
                cause = exc.cause if isinstance(exc.cause, Exception) else None
                if cause is not None:
                    raise cause from None
                raise
            except (RayActorError, ActorUnschedulableError) as exc:
                if isinstance(exc, gone) and self.actors[slot] is not None:
                    self.actors[slot] = None
                    self.lost += 1
                redo.appendleft((start, end))
                if not self.live:
                    raise EngineError(
                        f"every {self.name} actor is gone (each was restarted as often as "
                        "ray.max_restarts allows, or its node left the cluster)"
                    ) from None
                fill()
                continue
            if len(answer) != end - start:  # an actor bug, not a user error
                raise RuntimeError(f"{self.name}: {len(answer)} answers for {end - start} items")
            results[start:end] = answer
            done += end - start
            if progress is not None:
                progress(done, total)
            fill()
        return results

    def call_all(self, method: str, *args: Any) -> list[Any]:
        """``actor.method(*args)`` on every live actor, answers in actor order."""
        ray = import_ray()
        return ray.get([getattr(self.actors[i], method).remote(*args) for i in self.live])

    def close(self, method: str = "close", timeout_s: float = 30.0) -> None:
        """Asks every live actor to release what it holds, then ends it for good."""
        ray = import_ray()
        live = [self.actors[i] for i in self.live]
        if not live:
            return
        refs = [getattr(a, method).remote() for a in live]
        try:
            ray.wait(refs, num_returns=len(refs), timeout=timeout_s)
        finally:
            for actor in live:
                ray.kill(actor, no_restart=True)
            self.actors = [None] * len(self.actors)
