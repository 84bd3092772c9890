"""Compilation styles: the constants a compiled network is built with.

The construction (``compiler.py``) is the same in every style; a style fixes its magnitudes. Two
are defined, and ``scale`` multiplies every constant of either (the temperature knob of
``compile_scale``: below 1 the network is softer, above 1 harder):

- ``exact`` (this project's first compiler): powers of two as far apart as float32 allows
  (2^5 … 2^35), so every softmax is one-hot to float32 precision at every size up to 1,024, and on
  most training batches the losses and their gradients are exactly 0 (not on all: a batch can
  hold positions or keys closer than even these constants resolve).
- ``paper`` (the paper's Appendix A, as issue 22 summarises it; the paper's own text could not be
  read from this machine): moderate constants, powers of ten. The pointer decoder's c' is the
  paper's 1e3. The attention's constants are the smallest powers of ten, each ten times the next,
  at which the network is still exact on CLRS-30's test split and on fresh graphs at n = 16, 64
  and 256 (``tests/test_compile_styles.py`` measures it); Bellman-Ford's key scale on the edge
  weights is ``W_edge``'s large negative diagonal entry, and BFS's lower-index preference its
  ``W_p1`` row on the position. At these magnitudes the decoders' losses are small but not 0 on
  training data with random positions (``random_pos``: two positions can lie 1/n² apart, where
  c'·Δpos is a few units), so the gradients are not 0 either, and Adam, which divides by the
  gradient's own scale, turns them into steps of the learning rate's size. At hidden sizes above
  the program's block of 4 units the paper style extends the pattern (``compiler.tile_pattern``:
  every unit of the block repeated, the layers that read them divided by the copies), where the
  exact style leaves the extra units at zero (its ties sit at the edge of float32's resolution,
  which the copies' sums would cross).

Every constant's role, in the logit ``x`` of the attention (``compiler.py``'s docstring):
``x = -mask·(1 - visit) + pointer_preference·pointer - c·key + tie·pointer - not_edge·not_edge``
with ``c = key_budget / (range of key)``.
"""

from __future__ import annotations

import dataclasses
import math

from workers.compile.graph_program import ProgramError

SCALE_RANGE = (2.0 ** -10, 2.0 ** 4)   # compile_scale: beyond 16, exact's 2^35 nears float32's limits
SCALE_RANGE_TEXT = "[2^-10 (about 0.001), 16]"


@dataclasses.dataclass(frozen=True)
class CompileStyle:
    name: str
    key_budget: float           # c · (range of the minimised key)
    tie: float                  # τ: the current pointer wins an exact tie of keys
    pointer_preference: float   # P: keep the pointer (BFS: the parent; Bellman-Ford: the source)
    mask: float                 # C: only candidates whose mask holds
    not_edge: float             # E: never across a pointer edge that is no graph edge
    pointer_sharpness: float    # c' of the pointer decoders: logits -c'·|v_i - idx_j|
    mask_logit: float           # 0/1 components decode to ±mask_logit
    simple_pointer_sharpness: float   # simplify_decoders' n-way heads
    pow2: bool                  # round the key factor c down to a power of two (exact products)
    tile: bool = False          # hidden sizes above the program's block repeat its pattern
    scale: float = 1.0

    def scaled(self, scale: float) -> "CompileStyle":
        """Every constant times ``scale`` (the temperature knob)."""
        low, high = SCALE_RANGE
        if not (isinstance(scale, (int, float)) and math.isfinite(scale) and low <= scale <= high):
            raise ProgramError(f"compile_scale = {scale!r} is not allowed; it must be a number in "
                               f"{SCALE_RANGE_TEXT} (1: the style's own constants)")
        if scale == 1.0:
            return self
        fields = ("key_budget", "tie", "pointer_preference", "mask", "not_edge",
                  "pointer_sharpness", "mask_logit", "simple_pointer_sharpness")
        return dataclasses.replace(self, scale=self.scale * scale,
                                   **{f: getattr(self, f) * scale for f in fields})

    def describe(self) -> dict[str, float]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if f.name not in ("name", "pow2", "tile")}


EXACT_STYLE = CompileStyle(
    name="exact",
    key_budget=2.0 ** 30,
    tie=2.0 ** 5,                 # a few ulps of c·key at logits near 2^29
    pointer_preference=2.0 ** 31,
    mask=2.0 ** 33,
    not_edge=2.0 ** 35,
    pointer_sharpness=2.0 ** 17,  # one-hot soft pointers up to n = 5,202 (certify.py)
    mask_logit=2.0 ** 10,
    simple_pointer_sharpness=2.0 ** 10,   # simplify_decoders' logits are -1000 · max(·, ·) already
    pow2=True,
)

PAPER_STYLE = CompileStyle(
    name="paper",
    key_budget=1e6,               # Bellman-Ford: c = 1e6 / 9 on distance + weight (W_edge[w, x])
    tie=1e1,                      # above float32's rounding of x where the keys tie (measured)
    pointer_preference=1e7,
    mask=1e8,
    not_edge=1e9,
    pointer_sharpness=1e3,        # the paper's c ("e.g. -1e3", Appendix A)
    mask_logit=1e2,               # sigmoid(±100) is 0/1 to float32 precision
    simple_pointer_sharpness=1e3,
    pow2=False,
    tile=True,                    # "hidden 4 scaled up to 128 by extending the pattern"
)

STYLES_BY_NAME = {style.name: style for style in (EXACT_STYLE, PAPER_STYLE)}


def style_named(name: str = "exact", scale: float = 1.0) -> CompileStyle:
    """The style called ``name`` with every constant times ``scale``."""
    try:
        style = STYLES_BY_NAME[name]
    except KeyError:
        raise ProgramError(f"compile_style = {name!r} is not allowed; allowed: "
                           f"{', '.join(STYLES_BY_NAME)}") from None
    return style.scaled(scale)
