"""A shared partition of mouse-action space, learned once from the fleet: randomized identity trees.

``IdentityForest`` is an ensemble of extremely randomized trees (Geurts et al. 2006)
grown on a sample of the fleet's actions to separate *users* (Gini impurity on the user
label, best of a few random feature/threshold candidates per node). Each tree is a
complete binary tree in heap layout, so mapping actions to leaves is a fixed number
of vectorised steps. The trees carry no per-user state: per-user profiles are counts
over their leaves (see :mod:`touchstone.detectors.mouse`), so one partition serves
every user and costs the same whatever the size of the fleet.
"""

from __future__ import annotations

import numpy as np

__all__ = ["IdentityForest", "signed_log"]


def signed_log(values: np.ndarray) -> np.ndarray:
    """sign(x)·log(1+|x|): tames the heavy tails of speeds, accelerations and jerks; monotone, finite."""
    return np.sign(values) * np.log1p(np.abs(values))


class IdentityForest:
    """``n_trees`` randomized trees of depth ``depth`` over feature vectors.

    >>> rng = np.random.default_rng(0)
    >>> X = np.r_[rng.normal(0, 1, (200, 3)), rng.normal(3, 1, (200, 3))]
    >>> y = np.r_[np.zeros(200, int), np.ones(200, int)]
    >>> forest = IdentityForest.grow(X, y, n_trees=4, depth=3, seed=0)
    >>> forest.leaves(X[:2]).shape
    (2, 4)
    >>> bool((forest.leaves(X[:200]) != forest.leaves(X[200:])).mean() > 0.8)
    True
    """

    def __init__(self, feature: np.ndarray, threshold: np.ndarray) -> None:
        if feature.shape != threshold.shape or feature.ndim != 2:
            raise ValueError("feature and threshold must be (n_trees, 2**depth - 1) arrays")
        self.feature = feature.astype(np.int32)
        self.threshold = threshold.astype(np.float64)
        self.n_trees = int(feature.shape[0])
        self.depth = int(np.log2(feature.shape[1] + 1))
        if 2**self.depth - 1 != feature.shape[1]:
            raise ValueError("the trees must be complete: 2**depth - 1 internal nodes")
        self.n_leaves = 2**self.depth
        self._flat: tuple[np.ndarray, np.ndarray] | None = None

    @property
    def size(self) -> int:
        """Number of leaves over all trees (the length of a profile's count vector)."""
        return self.n_trees * self.n_leaves

    @classmethod
    def grow(
        cls,
        X: np.ndarray,
        y: np.ndarray,
        *,
        n_trees: int = 32,
        depth: int = 12,
        candidates: int = 8,
        min_leaf: int = 10,
        seed: int = 0,
    ) -> IdentityForest:
        """Grow the trees on ``X`` (n × features, already transformed) with user labels ``y`` (0..n_users-1).

        Each tree sees a bootstrap sample. A node stops splitting when it is pure or has
        fewer than ``2 * min_leaf`` samples; its samples then all fall to its leftmost leaf.
        """
        if X.ndim != 2 or X.shape[0] != y.shape[0] or X.shape[0] == 0:
            raise ValueError("X must be a non-empty (n, features) array with one label per row")
        if n_trees < 1 or not 1 <= depth <= 20 or candidates < 1 or min_leaf < 1:
            raise ValueError("n_trees, candidates, min_leaf must be >= 1 and depth within 1..20")
        rng = np.random.default_rng(seed)
        labels = np.unique(y, return_inverse=True)[1]
        n_classes = int(labels.max()) + 1
        onehot = np.eye(n_classes)[labels] if n_classes <= 256 else None
        n_internal = 2**depth - 1
        feature = np.zeros((n_trees, n_internal), dtype=np.int32)
        threshold = np.full((n_trees, n_internal), np.inf)
        n, n_features = X.shape
        for tree in range(n_trees):
            stack = [(0, rng.integers(0, n, n))]
            while stack:
                node, ids = stack.pop()
                if node >= n_internal:
                    continue
                split = cls._best_split(X, labels, onehot, n_classes, ids, rng, n_features, candidates, min_leaf)
                if split is None:
                    stack.append((2 * node + 1, ids))
                    continue
                f, th, left = split
                feature[tree, node] = f
                threshold[tree, node] = th
                stack.append((2 * node + 1, ids[left]))
                stack.append((2 * node + 2, ids[~left]))
        return cls(feature, threshold)

    @staticmethod
    def _best_split(
        X: np.ndarray,
        labels: np.ndarray,
        onehot: np.ndarray | None,
        n_classes: int,
        ids: np.ndarray,
        rng: np.random.Generator,
        n_features: int,
        candidates: int,
        min_leaf: int,
    ) -> tuple[int, float, np.ndarray] | None:
        m = ids.shape[0]
        if m < 2 * min_leaf:
            return None
        node_labels = labels[ids]
        if (node_labels == node_labels[0]).all():
            return None
        feats = rng.integers(0, n_features, candidates)
        cols = X[ids[:, None], feats[None, :]]  # m × candidates
        # Threshold between the values of two random samples of the node: follows the data's density.
        pick = rng.integers(0, m, (2, candidates))
        a = cols[pick[0], np.arange(candidates)]
        b = cols[pick[1], np.arange(candidates)]
        th = a + rng.random(candidates) * (b - a)
        left = cols <= th[None, :]
        n_left = left.sum(axis=0)
        n_right = m - n_left
        valid = (n_left >= min_leaf) & (n_right >= min_leaf)
        if not valid.any():
            return None
        if onehot is not None:
            left_counts = left.T.astype(np.float64) @ onehot[ids]  # candidates × classes
        else:
            left_counts = np.stack(
                [np.bincount(node_labels[left[:, c]], minlength=n_classes) for c in range(candidates)]
            ).astype(np.float64)
        total = np.bincount(node_labels, minlength=n_classes).astype(np.float64)
        right_counts = total[None, :] - left_counts
        with np.errstate(divide="ignore", invalid="ignore"):
            impurity = (n_left - (left_counts**2).sum(1) / np.maximum(n_left, 1)) + (
                n_right - (right_counts**2).sum(1) / np.maximum(n_right, 1)
            )
        impurity = np.where(valid, impurity, np.inf)
        best = int(np.argmin(impurity))
        return int(feats[best]), float(th[best]), left[:, best]

    def leaves(self, X: np.ndarray) -> np.ndarray:
        """Global leaf index (tree × n_leaves + leaf) of each row in each tree: (n, n_trees) int64."""
        n, n_features = X.shape
        if self._flat is None:
            self._flat = (self.feature.ravel().astype(np.int64), self.threshold.ravel())
        feature, threshold = self._flat
        values = np.ascontiguousarray(X, dtype=np.float64).ravel()
        tree_base = (np.arange(self.n_trees, dtype=np.int64) * (self.n_leaves - 1))[None, :]
        row_base = (np.arange(n, dtype=np.int64) * n_features)[:, None]
        node = np.zeros((n, self.n_trees), dtype=np.int64)
        for _ in range(self.depth):
            at = node + tree_base
            go_right = values.take(row_base + feature.take(at)) > threshold.take(at)
            node = 2 * node + 1 + go_right
        return node - (self.n_leaves - 1) + tree_base // (self.n_leaves - 1) * self.n_leaves

    def __getstate__(self) -> dict[str, object]:
        return {"feature": self.feature, "threshold": self.threshold}

    def __setstate__(self, state: dict[str, np.ndarray]) -> None:
        self.__init__(state["feature"], state["threshold"])  # type: ignore[misc]
