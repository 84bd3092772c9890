"""Loss landscapes (Li et al. 2018, "Visualizing the Loss Landscape of Neural Nets").

Pure functions on parameter pytrees (the network's nested dicts of arrays): the training objective
on a fixed batch, filter-normalised random directions, planes in parameter space (around one
network, or through two: e.g. a compiled and a learned one), the loss over a grid on such a plane
(vmapped over grid points, in chunks), and :class:`Landscape`, which stores a surface as a plain
``.npz`` and draws it as a contour plot.

Filter normalisation (Li et al. §4): a direction ``d`` is Gaussian, then each *filter* of it is
rescaled to the norm of the same filter of the reference parameters ``θ``, so that a step of 1 along
``d`` moves every filter by its own size, whatever the layer's scale. A filter is one output unit:
a column of a 2-D ``kernel`` ``[in, out]``. 1-D leaves (biases, LayerNorm scale/offset) get a zero
direction, as in Li et al.; any other leaf (e.g. the n × n ``pre_att_bias``, scalars) is normalised
as a whole. A filter whose parameters are all zero gets a zero direction, so a compiled network's
unused units stay exactly zero everywhere on a plane around it.
"""

from __future__ import annotations

import dataclasses
import functools
import textwrap
import time
from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from workers.canary import CanaryReport, compare_lanes
from workers.model.forward import Batch, unroll
from workers.model.losses import total_loss
from workers.model.network import NetConfig

Params = Any          # a parameter pytree (nested dicts of arrays)
LossFn = Callable[[Params], jax.Array]

_TINY = 1e-30


# -- the objective -----------------------------------------------------------------------------

# Networks evaluated at once, on every backend (XLA:CPU's YNNPACK miscompile of vmapped losses,
# which once capped this at 16, is off: workers/xla_flags.py; see lanes_canary).
DEFAULT_CHUNK = 64


def evaluation_loss(net_config: NetConfig, batch: Batch) -> LossFn:
    """The training objective (``total_loss`` of ``unroll(..., train=False)`` with
    ``PRNGKey(0)``, no regularisation) on a fixed batch, as a function of the parameters only.
    Pure and jit-/vmap-friendly; the batch is moved to the device once."""
    batch = jax.tree_util.tree_map(jnp.asarray, batch)
    key = jax.random.PRNGKey(0)

    def loss(params) -> jax.Array:
        outputs, hint_preds, _ = unroll(net_config, params, batch, key, train=False)
        return total_loss(net_config, batch, outputs, hint_preds)

    return loss


# -- pytree algebra (on the flat parameter vector: a few XLA ops whatever the number of leaves) --

def _ravel(tree: Params) -> tuple[jax.Array, Callable[[jax.Array], Params]]:
    """The float32 flat vector of a pytree's leaves and the function back to the pytree."""
    return ravel_pytree(jax.tree_util.tree_map(lambda x: jnp.asarray(x, jnp.float32), tree))


def tree_dot(a: Params, b: Params) -> jax.Array:
    """Σ over all leaves of the elementwise product (the flat parameter vectors' dot product)."""
    return jnp.vdot(_ravel(a)[0], _ravel(b)[0])


def tree_norm(a: Params) -> jax.Array:
    return jnp.linalg.norm(_ravel(a)[0])


# -- directions --------------------------------------------------------------------------------

def _is_kernel(path) -> bool:
    last = path[-1] if path else None
    return getattr(last, "key", None) == "kernel"


def _filter_ids(tree: Params) -> tuple[np.ndarray, int]:
    """For each entry of the flat vector (``_ravel``'s order), the filter it belongs to, and the
    number of filters. Filter 0 collects the 1-D leaves, whose direction is zero."""
    ids, nxt = [], 1
    for path, x in jax.tree_util.tree_leaves_with_path(tree):
        shape = tuple(np.shape(x))
        if len(shape) == 1:                                # biases, LayerNorm scale/offset
            ids.append(np.zeros(shape, np.int32).ravel())
        elif len(shape) == 2 and _is_kernel(path):         # [in, out]: one filter per column
            ids.append((nxt + np.broadcast_to(np.arange(shape[1], dtype=np.int32), shape)).ravel())
            nxt += shape[1]
        else:                                              # pre_att_bias, scalars, …: one filter
            ids.append(np.full(int(np.prod(shape, dtype=np.int64)), nxt, np.int32))
            nxt += 1
    return (np.concatenate(ids) if ids else np.zeros(0, np.int32)), nxt


def _normalize_flat(d: jax.Array, ref: jax.Array, ids: np.ndarray, nb_filters: int) -> jax.Array:
    d_norm = jnp.sqrt(jax.ops.segment_sum(d * d, ids, nb_filters))
    ref_norm = jnp.sqrt(jax.ops.segment_sum(ref * ref, ids, nb_filters))
    # an all-zero reference filter has ref_norm 0 and so gets an exactly zero direction
    scale = (ref_norm / jnp.maximum(d_norm, _TINY)).at[0].set(0.0)
    return d * scale[ids]


def normalize_filters(d: Params, reference: Params) -> Params:
    """Rescale each filter of ``d`` to the norm of the same filter of ``reference`` (1-D leaves
    become zero; see the module docstring). jit- and vmap-friendly."""
    flat, unravel = _ravel(d)
    ids, nb_filters = _filter_ids(reference)
    return unravel(_normalize_flat(flat, _ravel(reference)[0], ids, nb_filters))


def _random_flat(key: jax.Array, params: Params, filter_normalize: bool = True) -> jax.Array:
    ref = _ravel(params)[0]
    d = jax.random.normal(key, ref.shape, jnp.float32)
    return _normalize_flat(d, ref, *_filter_ids(params)) if filter_normalize else d


def random_direction(key: jax.Array, params: Params, filter_normalize: bool = True) -> Params:
    """A standard-Gaussian direction with the structure (and shapes) of ``params``, float32; with
    ``filter_normalize`` each filter is rescaled to the norm of the same filter of ``params``
    (1-D leaves zero, all-zero filters zero). jit- and vmap-friendly."""
    return _ravel(params)[1](_random_flat(key, params, filter_normalize))


def _orthogonalize_flat(d: jax.Array, against: jax.Array) -> jax.Array:
    denom = jnp.vdot(against, against)
    coef = jnp.where(denom > 0, jnp.vdot(d, against) / jnp.maximum(denom, _TINY), 0.0)
    return d - coef * against


def orthogonalize(d: Params, against: Params) -> Params:
    """``d`` minus its component along ``against`` (dot products over all leaves); ``d`` unchanged
    when ``against`` is zero."""
    flat, unravel = _ravel(d)
    return unravel(_orthogonalize_flat(flat, _ravel(against)[0]))


# -- planes ------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Plane:
    """The 2-D affine slice ``origin + a·d1 + b·d2`` of parameter space.

    ``end`` (optional) is the point at ``a = 1`` (so ``d1 = end − origin``): when it is set,
    :meth:`point` interpolates ``(1 − a)·origin + a·end + b·d2``, the same plane, but exact at
    both endpoints in float32 even when the two parameter sets differ by many orders of magnitude
    (compiled weights reach 2^35, where ``origin + (end − origin)`` loses a random init's weights
    entirely)."""

    origin: Params
    d1: Params
    d2: Params
    end: Params | None = None

    def terms(self) -> tuple[Params, Params, Params]:
        """(origin, d1 or end, d2) as float32: a point is Σ_k coefficients(a, b)[k] · terms[k]."""
        second = self.d1 if self.end is None else self.end
        return tuple(jax.tree_util.tree_map(lambda x: jnp.asarray(x, jnp.float32), t)
                     for t in (self.origin, second, self.d2))

    def coefficients(self, a, b):
        """The weights of :meth:`terms` at (a, b): (1, a, b), or (1 − a, a, b) with ``end``."""
        return (1.0 if self.end is None else 1.0 - a), a, b

    def point(self, a, b) -> Params:
        """The parameters at plane coordinates (a, b); a, b may be traced scalars."""
        return _combine(self.terms(), self.coefficients(a, b))


def _combine(terms, coefficients) -> Params:
    c0, c1, c2 = coefficients
    return jax.tree_util.tree_map(lambda o, x, y: c0 * o + c1 * x + c2 * y, *terms)


jax.tree_util.register_dataclass(Plane, data_fields=["origin", "d1", "d2", "end"], meta_fields=[])


def plane_around(key: jax.Array, center: Params) -> Plane:
    """Li et al.'s plane around one network: origin ``center``; ``d1``, ``d2`` independent
    filter-normalised Gaussian directions, ``d2`` orthogonalised against ``d1`` (which changes its
    filter norms slightly; random directions in many dimensions are nearly orthogonal anyway).
    jit- and vmap-friendly."""
    k1, k2 = jax.random.split(key)
    unravel = _ravel(center)[1]
    d1 = _random_flat(k1, center)
    d2 = _orthogonalize_flat(_random_flat(k2, center), d1)
    return Plane(center, unravel(d1), unravel(d2))


def plane_through(key: jax.Array, p_a: Params, p_b: Params, reference: str = "displacement") -> Plane:
    """The plane through two networks: ``point(0, 0) = p_a``, ``point(1, 0) = p_b`` (exactly:
    see :class:`Plane`), ``d1 = p_b − p_a``.

    ``d2`` is a Gaussian direction filter-normalised against ``reference``: ``"displacement"``
    (default) normalises each filter to the same filter of ``d1``, so ``d2`` moves the filters in
    which the two networks differ, each by as much as they differ (a compiled network's zero filters
    still move when the other network's are non-zero); ``"origin"`` normalises against ``p_a`` as
    in :func:`plane_around`. It is then orthogonalised against ``d1`` and rescaled to ``‖d1‖``, so
    both axes have the same units: (0, ±1) is as far from ``p_a`` as ``p_b`` is. If ``p_a == p_b``
    both directions are zero."""
    (a, unravel), b = _ravel(p_a), _ravel(p_b)[0]
    if jax.tree_util.tree_structure(p_a) != jax.tree_util.tree_structure(p_b) or any(
            np.shape(x) != np.shape(y) for x, y in zip(jax.tree_util.tree_leaves(p_a),
                                                      jax.tree_util.tree_leaves(p_b))):
        raise ValueError("p_a and p_b are parameters of different networks (structure or shapes)")
    d1 = b - a
    if reference == "displacement":
        ref = unravel(d1)
    elif reference == "origin":
        ref = p_a
    else:
        raise ValueError(f"reference must be 'displacement' or 'origin', not {reference!r}")
    d2 = _orthogonalize_flat(_random_flat(key, ref), d1)
    n1, n2 = jnp.linalg.norm(d1), jnp.linalg.norm(d2)
    d2 = d2 * jnp.where(n2 > 0, n1 / jnp.maximum(n2, _TINY), 0.0)
    origin, d1, d2, end = unravel(a), unravel(d1), unravel(d2), unravel(b)
    return Plane(origin, d1, d2, end)


# -- surfaces ----------------------------------------------------------------------------------

# One compiled function evaluates every surface: it takes a chunk of networks, each given by its
# own (origin, second, d2) terms (leading axis: the chunk) and coefficients [chunk, 3], and vmaps
# the loss over them. ``loss_fn`` is static (hashed by identity), the parameters are arguments (not
# baked-in constants), so a single plane, a plane through two networks and a whole population's
# planes all share one compilation per (loss_fn, chunk size, parameter shapes).
@functools.partial(jax.jit, static_argnums=0)
def _chunk_losses(loss_fn: LossFn, terms, coefficients: jax.Array) -> jax.Array:
    return jax.vmap(lambda o, x, y, c: loss_fn(_combine((o, x, y), (c[0], c[1], c[2]))))(
        *terms, coefficients)


@jax.jit
def _gather(stacked_terms, index: jax.Array):
    return jax.tree_util.tree_map(lambda x: x[index], stacked_terms)


def _grid(alphas, betas) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    alphas = np.asarray(alphas, np.float64).reshape(-1)
    betas = np.asarray(betas, np.float64).reshape(-1)
    a, b = np.meshgrid(alphas, betas, indexing="ij")
    return alphas, betas, np.stack([a.ravel(), b.ravel()], axis=-1)


def _evaluate(loss_fn: LossFn, stacked_terms, planes: np.ndarray, coefficients: np.ndarray,
              chunk: int) -> np.ndarray:
    """Losses (float64 ``[P]``) of the networks ``Σ_k coefficients[p, k] · terms[k][planes[p]]``,
    where ``stacked_terms`` hold S planes' terms stacked ``[S, …]``; in chunks of one shape (the
    last one padded by repeating its last network)."""
    if chunk < 1:
        raise ValueError(f"chunk must be at least 1, not {chunk}")
    total = len(planes)
    if not total:
        return np.zeros(0)
    chunk = min(chunk, total)
    coefficients = np.asarray(coefficients, np.float32)
    pieces = []
    for start in range(0, total, chunk):
        index, coef = planes[start:start + chunk], coefficients[start:start + chunk]
        pad = chunk - len(index)
        if pad:
            index = np.concatenate([index, np.repeat(index[-1:], pad)])
            coef = np.concatenate([coef, np.repeat(coef[-1:], pad, axis=0)])
        terms = _gather(stacked_terms, jnp.asarray(index, jnp.int32))
        losses = _chunk_losses(loss_fn, terms, jnp.asarray(coef))
        pieces.append(np.asarray(losses, np.float64)[:chunk - pad])
    return np.concatenate(pieces)


def lanes_canary(loss_fn: LossFn, planes: "Plane", alphas, betas, chunk: int = DEFAULT_CHUNK,
                 shape: str = "") -> CanaryReport:
    """The numerical canary (``workers.canary``) for :func:`stacked_surfaces`'s compiled function:
    its first chunk of networks vmapped, against the chunk's first and last network alone. Raises
    ``NumericalCanaryError`` on a mismatch."""
    start = time.perf_counter()
    nb_planes = jax.tree_util.tree_leaves(planes.origin)[0].shape[0]
    _, _, points = _grid(alphas, betas)
    index = np.repeat(np.arange(nb_planes), len(points))
    coefficients = np.tile(_plane_coefficients(planes.end is not None, points), (nb_planes, 1))
    size = min(chunk, len(index))
    terms = _gather(planes.terms(), jnp.asarray(index[:size], jnp.int32))
    coef = jnp.asarray(coefficients[:size], jnp.float32)
    together = {"loss": np.asarray(_chunk_losses(loss_fn, terms, coef))}
    lanes = (0, size - 1) if size > 1 else ()
    alone = {lane: {"loss": np.asarray(_chunk_losses(
        loss_fn, jax.tree_util.tree_map(lambda x: x[lane:lane + 1], terms),
        coef[lane:lane + 1]))[0]} for lane in lanes}
    return compare_lanes("landscape loss", shape or f"chunk of {size} networks", together, alone,
                         time.perf_counter() - start)


def _plane_coefficients(has_end: bool, points: np.ndarray) -> np.ndarray:
    a, b = points[:, 0], points[:, 1]
    return np.stack([1.0 - a if has_end else np.ones_like(a), a, b], axis=-1)


def surface(loss_fn: LossFn, plane: Plane, alphas, betas, chunk: int = DEFAULT_CHUNK) -> np.ndarray:
    """The loss at every grid point ``plane.point(alphas[i], betas[j])``: float64 ``[A, B]``.
    Grid points are vmapped in chunks of ``chunk`` networks (one compilation per chunk size);
    non-finite losses are returned as they are (NaN / inf)."""
    alphas, betas, points = _grid(alphas, betas)
    stacked = jax.tree_util.tree_map(lambda x: x[None], plane.terms())
    coefficients = _plane_coefficients(plane.end is not None, points)
    losses = _evaluate(loss_fn, stacked, np.zeros(len(points), np.int64), coefficients, chunk)
    return losses.reshape(len(alphas), len(betas))


# plane_around vmapped: keys [S, 2] and centres [S, …] → one Plane with [S, …] leaves. Eager: dozens
# of small ops, cheaper than compiling them.
planes_around = jax.vmap(plane_around)


def stacked_surfaces(loss_fn: LossFn, planes: Plane, alphas, betas,
                     chunk: int = DEFAULT_CHUNK) -> np.ndarray:
    """The surfaces of S planes stacked in one :class:`Plane` (``[S, …]`` leaves, e.g. from
    :data:`planes_around` or ``jax.vmap(plane_through)``): float64 ``[S, A, B]``. The S × A × B
    (plane, grid point) pairs are vmapped in chunks of ``chunk`` networks, with the same compiled
    function as :func:`surface`."""
    nb_planes = jax.tree_util.tree_leaves(planes.origin)[0].shape[0]
    alphas, betas, points = _grid(alphas, betas)
    index = np.repeat(np.arange(nb_planes), len(points))
    coefficients = np.tile(_plane_coefficients(planes.end is not None, points), (nb_planes, 1))
    losses = _evaluate(loss_fn, planes.terms(), index, coefficients, chunk)
    return losses.reshape(nb_planes, len(alphas), len(betas))


def surfaces_vmapped(loss_fn: LossFn, centers_stacked: Params, key: jax.Array, alphas, betas,
                     chunk: int = DEFAULT_CHUNK) -> tuple[Plane, np.ndarray]:
    """:func:`plane_around` surfaces of a whole population at once: ``centers_stacked`` is a
    ``[S, …]`` parameter pytree (e.g. a population's trained parameters); seed s gets the plane
    ``plane_around(jax.random.split(key, S)[s], centers[s])`` (built vmapped over seeds). Returns
    the stacked planes (``[S, …]`` leaves) and the losses float64 ``[S, A, B]``."""
    nb_seeds = jax.tree_util.tree_leaves(centers_stacked)[0].shape[0]
    planes = planes_around(jax.random.split(key, nb_seeds), centers_stacked)
    return planes, stacked_surfaces(loss_fn, planes, alphas, betas, chunk)


# -- storing and drawing -----------------------------------------------------------------------

@dataclasses.dataclass
class Landscape:
    """A loss surface on a plane: ``losses[i, j]`` at ``(alphas[i], betas[j])``, plus named points
    in plane coordinates (e.g. ``{"learned": (0, 0), "compiled": (1, 0)}``)."""

    alphas: np.ndarray
    betas: np.ndarray
    losses: np.ndarray
    markers: Mapping[str, tuple[float, float]] = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        self.alphas = np.asarray(self.alphas, np.float64).reshape(-1)
        self.betas = np.asarray(self.betas, np.float64).reshape(-1)
        self.losses = np.asarray(self.losses, np.float64)
        if self.losses.shape != (len(self.alphas), len(self.betas)):
            raise ValueError(f"losses have shape {self.losses.shape}, the grid is "
                             f"{(len(self.alphas), len(self.betas))}")
        self.markers = {str(k): (float(v[0]), float(v[1])) for k, v in dict(self.markers).items()}

    @classmethod
    def compute(cls, loss_fn: LossFn, plane: Plane, alphas, betas, markers=None,
                chunk: int = DEFAULT_CHUNK) -> "Landscape":
        return cls(alphas, betas, surface(loss_fn, plane, alphas, betas, chunk), markers or {})

    def to_npz(self, path) -> None:
        """Plain arrays (no pickle): alphas, betas, losses, marker_names (unicode), marker_points."""
        names = list(self.markers)
        with open(path, "wb") as fh:
            np.savez(fh, alphas=self.alphas, betas=self.betas, losses=self.losses,
                     marker_names=np.array(names, dtype=str),
                     marker_points=np.array([self.markers[n] for n in names],
                                            np.float64).reshape(len(names), 2))

    @classmethod
    def from_npz(cls, path) -> "Landscape":
        with np.load(path, allow_pickle=False) as npz:
            names = [str(n) for n in npz["marker_names"]]
            points = npz["marker_points"]
            return cls(npz["alphas"], npz["betas"], npz["losses"],
                       {n: (float(p[0]), float(p[1])) for n, p in zip(names, points)})

    def plot(self, path, title: str = "", log_span: float = 100.0) -> None:
        """A filled contour PNG (α across, β up) with a colorbar and the markers labelled. Levels
        are logarithmic when the finite positive losses span more than ``log_span``× (zeros are
        drawn at the smallest positive loss); non-finite losses are left blank."""
        # inside the function: matplotlib loads only when a figure is drawn
        from matplotlib import colors
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        z = np.ma.masked_invalid(self.losses.T)                # rows: betas, columns: alphas
        fig = Figure(figsize=(6, 5), dpi=100)
        FigureCanvasAgg(fig)
        ax = fig.add_subplot(1, 1, 1)
        finite = self.losses[np.isfinite(self.losses)]
        positive = finite[finite > 0]
        can_contour = len(self.alphas) > 1 and len(self.betas) > 1 and finite.size > 0
        if can_contour:
            lo, hi = (positive.min(), positive.max()) if positive.size else (0.0, 0.0)
            if positive.size and hi / lo > log_span:
                levels = np.geomspace(lo, hi, 25)
                norm = colors.LogNorm(vmin=lo, vmax=hi)
                z = np.ma.masked_invalid(np.clip(self.losses.T, lo, None))
                label = "loss (log scale)"
                decades = np.arange(np.ceil(np.log10(lo)), np.floor(np.log10(hi)) + 1)
                ticks = 10.0 ** decades if len(decades) >= 2 else None
            else:
                flo, fhi = float(finite.min()), float(finite.max())
                levels = np.linspace(flo, fhi if fhi > flo else flo + 1.0, 25)
                norm, label, ticks = None, "loss", None
            mesh = ax.contourf(self.alphas, self.betas, z, levels=levels, norm=norm,
                               cmap="viridis", extend="neither")
            ax.contour(self.alphas, self.betas, z, levels=levels[::4], norm=norm, colors="white",
                       linewidths=0.4, alpha=0.6)
            bar = fig.colorbar(mesh, ax=ax, label=label)
            if ticks is not None:
                bar.set_ticks(ticks, labels=[f"$10^{{{int(e)}}}$" for e in np.log10(ticks)])
        else:
            ax.text(0.5, 0.5, "no finite losses to draw" if not finite.size else
                    "grid too small to contour", ha="center", va="center", transform=ax.transAxes)
        for name, (a, b) in self.markers.items():
            ax.plot([a], [b], marker="*", markersize=12, color="red", markeredgecolor="black",
                    linestyle="none")
            ax.annotate(name, (a, b), textcoords="offset points", xytext=(6, 6), color="black",
                        fontsize=9, bbox={"boxstyle": "round,pad=0.2", "fc": "white", "alpha": 0.8})
        ax.set_xlabel("α (d1)")
        ax.set_ylabel("β (d2)")
        ax.set_title("\n".join(textwrap.wrap(title, 58, break_on_hyphens=False)), fontsize=10)   # long labels wrap
        fig.savefig(path, format="png")
