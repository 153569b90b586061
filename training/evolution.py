"""The genetic search of evolutionary channel pruning (Shu et al., ICCV 2019), as numbers only.

An individual is a binary code over every prunable channel (1: kept), laid out group after
group; a group never loses all its channels. Each generation the whole population is scored by
the caller (in parallel, on Ray), then the next one is bred:

* the best individual always survives (the best fitness never gets worse);
* each other place is, with probability ``s1``, the next best individual kept as it is; with
  probability ``s2``, a crossover of two parents (each group's bits from one or the other,
  so that a layer's pruning stays whole); otherwise a mutation of one parent (each bit flipped
  with probability ``mutation``). Parents are picked by tournaments of two.

The population starts from the unpruned network plus random codes keeping 30-100% of the
channels. The state (population, generation, table, random generator) is plain JSON, so a search
resumes where it stopped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np


@dataclass
class SearchState:
    population: list[list[int]]  # codes, as 0/1 lists
    generation: int = 0  # generations scored so far
    table: list[dict] = field(default_factory=list)  # one row per scored generation
    best: dict = field(default_factory=dict)  # {"code": [...], "fitness": f, ...}
    rng: dict = field(default_factory=dict)  # numpy bit generator state

    def to_json(self) -> dict:
        return self.__dict__.copy()


def start(sizes: list[int], population: int, seed: int) -> SearchState:
    rng = np.random.default_rng(seed)
    total = sum(sizes)
    codes = [np.ones(total, bool)]
    for keep in np.linspace(1.0, 0.3, population)[1:]:
        codes.append(repair(rng.random(total) < keep, sizes, rng))
    return SearchState([c.astype(int).tolist() for c in codes], rng=rng.bit_generator.state)


def repair(code: np.ndarray, sizes: list[int], rng: np.random.Generator) -> np.ndarray:
    """Every group keeps at least one channel."""
    code = code.copy()
    offset = 0
    for size in sizes:
        if not code[offset:offset + size].any():
            code[offset + rng.integers(size)] = True
        offset += size
    return code


Score = Callable[[list[np.ndarray]], list[dict]]  # codes -> [{"fitness": f, ...}] in order


def run_generation(state: SearchState, sizes: list[int], score: Score, s1: float, s2: float,
                   mutation: float) -> dict:
    """Score ``state.population``, record the generation's row, and replace the population by
    the next generation (so that a search given more generations later goes on from there).
    Returns the row."""
    rng = np.random.default_rng()
    rng.bit_generator.state = state.rng
    codes = [np.asarray(c, bool) for c in state.population]
    scores = score(codes)
    order = sorted(range(len(codes)), key=lambda i: scores[i]["fitness"])
    best = order[0]
    if not state.best or scores[best]["fitness"] < state.best["fitness"]:
        state.best = {"code": codes[best].astype(int).tolist(), **scores[best]}
    state.generation += 1
    row = {"generation": state.generation,
           **{k: v for k, v in state.best.items() if k != "code"},
           "mean_fitness": float(np.mean([s["fitness"] for s in scores])),
           "kept": int(np.sum(state.best["code"]))}
    state.table.append(row)
    state.population = [c.astype(int).tolist()
                        for c in _next(codes, scores, order, sizes, rng, s1, s2, mutation)]
    state.rng = rng.bit_generator.state
    return row


def _next(codes, scores, order, sizes, rng, s1, s2, mutation) -> list[np.ndarray]:
    def parent() -> np.ndarray:
        a, b = rng.integers(len(codes), size=2)
        return codes[a] if scores[a]["fitness"] <= scores[b]["fitness"] else codes[b]

    out = [codes[order[0]]]
    kept = 1
    while len(out) < len(codes):
        r = rng.random()
        if r < s1 and kept < len(order):
            child = codes[order[kept]]
            kept += 1
        elif r < s1 + s2:
            a, b = parent(), parent()
            child = a.copy()
            offset = 0
            for size in sizes:
                if rng.random() < 0.5:
                    child[offset:offset + size] = b[offset:offset + size]
                offset += size
        else:
            child = parent() ^ (rng.random(len(codes[0])) < mutation)
        out.append(repair(child, sizes, rng))
    return out


def split(code, names: list[str], sizes: list[int]) -> dict[str, list[int]]:
    """A code as each group's kept channel indices."""
    code = np.asarray(code, bool)
    out, offset = {}, 0
    for name, size in zip(names, sizes):
        out[name] = np.flatnonzero(code[offset:offset + size]).tolist()
        offset += size
    return out
