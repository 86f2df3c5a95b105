"""Validation splits: by identity wherever identities are known, so no person is on both sides."""

from __future__ import annotations

import numpy as np

from facemark.errors import FacemarkError


def holdout_people(identities: list[str | None], fraction: float, seed: int) -> set[str]:
    """The identities kept out of training for validation: a seeded draw over the sorted names."""
    people = sorted({i for i in identities if i is not None})
    rng = np.random.default_rng(seed)
    chosen = rng.permutation(len(people))[: max(1, round(fraction * len(people)))]
    return {people[i] for i in chosen}


def split_indices(identities: list[str | None], fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Validation split by identity when identities are known (no person on both sides), else random."""
    n = len(identities)
    if n < 2:
        raise FacemarkError(f"need at least 2 labelled faces to train with validation, got {n}")
    if all(i is not None for i in identities) and len(set(identities)) >= 2:
        val_people = holdout_people(identities, fraction, seed)
        is_val = np.array([i in val_people for i in identities])
        return np.flatnonzero(~is_val), np.flatnonzero(is_val)
    perm = np.random.default_rng(seed).permutation(n)
    n_val = min(n - 1, max(1, round(fraction * n)))
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])
