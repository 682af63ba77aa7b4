"""The deformation's parameters: one frozen spec that checks itself once, and its JSON form.

[`DeformParams`][nsegaug.params.DeformParams] is what decides how one label map is deformed: the
(alpha, sigma) pairs, the small-object threshold, the ignore index, the
variant and the float precision. Every engine and adapter holds one (the CPU
engine, [`nsegaug.NoisySegmentPlus`][nsegaug.transform.NoisySegmentPlus], the albumentations transform, the
torch engine, ``generate``, ``preview``, ``train --online``), and the
command-line options are built from its fields, so a new knob is added here,
in the engine that uses it, and in the README.

What is drawn at random is not here: the seed, the probability ``prob`` and
the number of copies are sampling parameters of whoever draws (see
[`nsegaug.copies`][nsegaug.copies]). Pure Python: importing this module costs nothing.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from .errors import UsageError

DEFAULT_ALPHA_SIGMA: tuple[tuple[float, float], ...] = tuple(
    (alpha, sigma) for alpha in (1, 15, 30, 50, 100) for sigma in (3, 5, 10)
)
DEFAULT_AREA_THRESH = 1000
# The strengths ``nsegaug calibrate`` tries unless told: the paper's alphas and sigmas with more on both sides,
# and area thresholds at the edges of its object size bins (the paper's 1000 among them).
CALIBRATION_ALPHAS = (1, 5, 10, 15, 30, 50, 100, 200)
CALIBRATION_SIGMAS = (2, 3, 5, 10)
CALIBRATION_THRESHOLDS = (0, 16, 64, 256, 1000, 4000)
# The method's own probability of deforming a sample (the paper's p).
PAPER_PROB = 0.5
# The most copies of one mask a run makes. A worker holds a mask's copies and rows until all its files are
# written (the manifest lists a mask only whole), so its memory grows with the count; a thousand copies of
# every mask is a thousandfold dataset, and a billion (a typo) would fill any memory before writing a file.
MAX_COPIES = 1000
VARIANTS = ("nsegment+", "nsegment")
PRECISIONS = ("float32", "float64")
# What alpha, sigma and area_thresh are measured in: voxels (pixels of a 2D map), or millimetres (mm³ for the
# threshold) from a volume's header, so that a deformation on anisotropic voxels is the same in every direction.
UNITS = ("voxels", "mm")
# The engines (what a run records as "engine"): 1, the reference's Mersenne Twister stream and cv2.GaussianBlur;
# 2, the same stream, float32 fields blurred as two row passes (the same kernel; the default since 2); 3, the pair
# first, then 16-bit levels from PCG64 (a stream 8x as fast; the same blur). float64 is the reference code's
# arithmetic in every engine: bit-identical to it with engines 1 and 2, on engine 3's own noise with engine 3.
ENGINES = (1, 2, 3)
DEFAULT_ENGINE = 2
# OpenCV's Gaussian kernel for sigma has about 8 * sigma + 1 taps: at 100 px a 1024x2048 field already
# takes over a second to blur, and beyond it the field is all but flat. The paper's largest sigma is 10.
MAX_SIGMA = 100.0
# alpha is the amplitude of the noise before the blur. Blurred by the largest sigma (which shrinks it about
# 600-fold), 1e6 px still moves pixels by about 1600 px on average, past the border of most maps; above 2**24
# float32 coordinates no longer hold whole pixels, and near 1.7e38 the float32 field overflows to inf, so a
# larger alpha is a typo, refused before any map is read. The paper's largest alpha is 100.
MAX_ALPHA = 1e6
# Label maps are read as uint8, uint16 or int32: an ignore index outside these could never occur in one.
IGNORE_INDEX_RANGE = (-(2**31), 2**31 - 1)


def _spec(help_text: str) -> dict:
    return {"help": help_text}


@dataclass(frozen=True)
class DeformParams:
    """How one label map is deformed (NSegment+ or the pilot NSegment); checked once, on creation.

    Fields, in the words of the method:

    - ``alpha_sigma``: the (alpha, sigma) pairs one is drawn from per deformation;
      alpha is the noise amplitude and sigma the Gaussian's, both in pixels;
    - ``area_thresh``: components of at most this many pixels are protected (theta);
    - ``ignore_index``: a label value that is never a small object (``None``:
      every value is a class, as in the reference code);
    - ``variant``: ``"nsegment+"``, or ``"nsegment"``, the pilot method,
      without suppression, which draws the pair before the fields;
    - ``precision``: ``"float32"`` (fast) or ``"float64"`` (bit-identical to
      the reference code);
    - ``units``: ``"voxels"`` (pixels of a 2D map), or ``"mm"``: alpha and
      sigma in millimetres and ``area_thresh`` in mm³, turned into voxels per
      axis from a volume's spacing ([`nsegaug.volume`][nsegaug.volume]); 2D maps have no
      spacing, so they take voxels only;
    - ``engine``: how the fields are drawn and blurred (``nsegaug.params.ENGINES``): 2,
      the default, draws the reference code's stream; 3 draws its own, faster
      stream (same seed, other copies), in about a quarter less time.

    Raises [`nsegaug.errors.UsageError`][nsegaug.errors.UsageError] (a ``ValueError``) for values
    the method cannot use.
    """

    alpha_sigma: tuple[tuple[float, float], ...] = field(
        default=DEFAULT_ALPHA_SIGMA, metadata=_spec("(alpha, sigma) pairs to draw from, as ALPHA:SIGMA,...")
    )
    area_thresh: float = field(
        default=DEFAULT_AREA_THRESH,
        metadata=_spec("Components of at most this many pixels are protected from deformation."),
    )
    ignore_index: int | None = field(
        default=None,
        metadata=_spec("Label value never taken as a small object (e.g. 255); default: none, as the reference."),
    )
    variant: str = field(
        default="nsegment+", metadata=_spec("nsegment is the pilot method: no small-object suppression.")
    )
    precision: str = field(
        default="float32", metadata=_spec("float64 is bit-identical to the reference code, and slower.")
    )
    units: str = field(
        default="voxels",
        metadata=_spec(
            "alpha, sigma and area_thresh in voxels (pixels of 2D maps), or mm (mm³) from each volume's header."
        ),
    )
    engine: int = field(
        default=DEFAULT_ENGINE,
        metadata=_spec(
            "2: the reference code's random stream. 3: a faster stream of its own (other copies for the same seed): "
            "a quarter less time a map. 1: engine 2 with OpenCV's GaussianBlur (slower, for comparison)."
        ),
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "alpha_sigma", check_alpha_sigma(self.alpha_sigma))
        if not (_is_number(self.area_thresh) and math.isfinite(self.area_thresh) and self.area_thresh >= 0):
            raise UsageError(f"area_thresh must be a finite number of pixels >= 0, got {self.area_thresh!r}")
        object.__setattr__(self, "area_thresh", _plain(self.area_thresh))
        check_ignore_index(self.ignore_index)
        if self.ignore_index is not None:
            object.__setattr__(self, "ignore_index", int(self.ignore_index))  # a NumPy integer would not be JSON
        if self.variant not in VARIANTS:
            raise UsageError(f"variant must be one of {', '.join(VARIANTS)}, got {self.variant!r}")
        if self.precision not in PRECISIONS:
            raise UsageError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if self.units not in UNITS:
            raise UsageError(f"units must be one of {', '.join(UNITS)}, got {self.units!r}")
        if isinstance(self.engine, bool) or self.engine not in ENGINES:
            raise UsageError(f"engine must be one of {', '.join(map(str, ENGINES))}, got {self.engine!r}")
        object.__setattr__(self, "engine", int(self.engine))

    @property
    def suppresses(self) -> bool:
        """Whether small components are protected (NSegment+), or not (the pilot NSegment)."""
        return self.variant == "nsegment+"

    def to_dict(self) -> dict:
        """JSON-ready values (pairs as lists), as ``manifest.meta.json`` records them."""
        return {
            "alpha_sigma": [list(pair) for pair in self.alpha_sigma],
            "area_thresh": self.area_thresh,
            "ignore_index": self.ignore_index,
            "variant": self.variant,
            "precision": self.precision,
            "units": self.units,
            "engine": self.engine,
        }

    @classmethod
    def from_dict(cls, values: Mapping) -> DeformParams:
        """The spec from [`to_dict`][nsegaug.params.DeformParams.to_dict]'s form; other keys (a run's seed, copies, ...)
        are left alone."""
        known = {name: values[name] for name in field_names() if name in values}
        return cls(**known)

    def replace(self, **changes) -> DeformParams:
        """A copy with some fields changed, checked again."""
        return dataclasses.replace(self, **changes)

    def scaled(self, factor: float, min_sigma: float = 2.0) -> DeformParams:
        """The same deformation for maps ``factor`` times as large (the paper's grid, tuned on crops of about
        512 px, for maps of 128 px: 0.25).

        Every displacement and the field's smoothness scale with the map, and
        the same objects are protected: sigma times ``factor`` (but at least
        ``min_sigma`` px: a blur narrower than a pixel or two leaves a ragged
        field), alpha such that the field's rms displacement (alpha / sigma,
        see ``docs/calibration.md``) is ``factor`` times as large (``factor``
        squared times alpha while sigma scales freely), the area threshold
        times ``factor`` squared.
        """
        if not (_is_number(factor) and math.isfinite(factor) and factor > 0):
            raise UsageError(f"the scale factor must be a number > 0, got {factor!r}")
        pairs = []
        for alpha, sigma in self.alpha_sigma:
            new_sigma = max(sigma * factor, min(min_sigma, sigma))
            pairs.append((round(alpha * factor * new_sigma / sigma, 4), round(new_sigma, 4)))
        return self.replace(alpha_sigma=tuple(pairs), area_thresh=round(self.area_thresh * factor**2, 4))

    @classmethod
    def from_flat(
        cls,
        alpha_sigma_list: Iterable[Sequence[float]] | None = None,
        area_thresh: float = DEFAULT_AREA_THRESH,
        ignore_index: int | None = None,
        variant: str = "nsegment+",
        precision: str = "float32",
        engine: int = DEFAULT_ENGINE,
    ) -> DeformParams:
        """The spec from the flat keyword arguments of the method's own transform (``alpha_sigma_list=None``:
        the paper's pairs), as mmsegmentation and albumentations configs name them."""
        pairs = DEFAULT_ALPHA_SIGMA if alpha_sigma_list is None else alpha_sigma_list
        return cls(pairs, area_thresh, ignore_index, variant, precision, engine=engine)


class FlatParams:
    """Read-only views of ``self.deform_params`` under the flat names of the method's transform.

    For adapters built from configs that name the fields one by one (an
    mmsegmentation pipeline entry, an albumentations ``to_dict``). Not
    ``self.params``: albumentations' transforms use that name themselves.
    """

    deform_params: DeformParams

    alpha_sigma_list = property(lambda self: self.deform_params.alpha_sigma)
    area_thresh = property(lambda self: self.deform_params.area_thresh)
    ignore_index = property(lambda self: self.deform_params.ignore_index)
    variant = property(lambda self: self.deform_params.variant)
    precision = property(lambda self: self.deform_params.precision)
    engine = property(lambda self: self.deform_params.engine)

    def params_repr(self) -> str:
        """The flat arguments as ``name=value, ...``, for ``__repr__``."""
        return (
            f"alpha_sigma_list={list(self.alpha_sigma_list)}, area_thresh={self.area_thresh}, "
            f"ignore_index={self.ignore_index}, variant={self.variant!r}, precision={self.precision!r}, "
            f"engine={self.engine}"
        )


class MethodTransform(FlatParams):
    """The method's own transform arguments (its ``NoisySegmentPlus``), plus a seed: what the CPU transform
    and the batched torch transform both take, held as one [`DeformParams`][nsegaug.params.DeformParams], ``prob`` and
    ``seed``."""

    def __init__(
        self,
        alpha_sigma_list: Iterable[Sequence[float]] | None = None,
        prob: float = PAPER_PROB,
        area_thresh: float = DEFAULT_AREA_THRESH,
        ignore_index: int | None = None,
        variant: str = "nsegment+",
        precision: str = "float32",
        seed: int | None = None,
        engine: int = DEFAULT_ENGINE,
    ) -> None:
        self.deform_params = DeformParams.from_flat(
            alpha_sigma_list, area_thresh, ignore_index, variant, precision, engine
        )
        self.prob = check_prob(prob)
        self.seed = seed

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.params_repr()}, prob={self.prob}, seed={self.seed})"


def field_names() -> tuple[str, ...]:
    """The spec's field names, in order: what the command-line options and the metadata are built from."""
    return tuple(spec.name for spec in dataclasses.fields(DeformParams))


def split_options(options: dict) -> tuple[DeformParams, dict]:
    """The spec built from the matching entries of a command's ``options``, and the other entries."""
    names = field_names()
    params = DeformParams(**{name: options[name] for name in names if name in options})
    return params, {name: value for name, value in options.items() if name not in names}


def check_alpha_sigma(pairs: Iterable[Sequence[float]]) -> tuple[tuple[float, float], ...]:
    """The (alpha, sigma) pairs as a tuple of pairs, or a [`UsageError`][nsegaug.errors.UsageError] saying which pair is
    unusable."""
    try:
        checked = tuple(tuple(pair) for pair in pairs)
    except TypeError as error:
        raise UsageError(f"alpha_sigma must be a list of (alpha, sigma) pairs, got {pairs!r}") from error
    if not checked:
        raise UsageError("alpha_sigma is empty: give at least one (alpha, sigma) pair")
    for pair in checked:
        if len(pair) != 2 or not all(_is_number(value) for value in pair):
            raise UsageError(f"each entry must be an (alpha, sigma) pair of numbers, got {pair!r}")
        alpha, sigma = pair
        if not (math.isfinite(alpha) and 0 <= alpha <= MAX_ALPHA):
            raise UsageError(f"alpha must be a finite number in [0, {MAX_ALPHA:g}] px, got {float(alpha):g}")
        if not (math.isfinite(sigma) and sigma > 0):
            raise UsageError(f"sigma must be a finite number > 0, got {sigma!r}")
        if sigma > MAX_SIGMA:
            raise UsageError(
                f"sigma {sigma:g} is above {MAX_SIGMA:g} px: its Gaussian kernel has {8 * sigma + 1:.0f} taps, "
                "seconds to minutes per map for a field that is all but flat (the paper's largest sigma is 10)"
            )
    # NumPy scalars (a pair list given as an array) become Python numbers: the metadata is JSON.
    return tuple((_plain(alpha), _plain(sigma)) for alpha, sigma in checked)


def format_alpha_sigma(pairs: Iterable[Sequence[float]]) -> str:
    """The pairs as ``ALPHA:SIGMA,...``, the form of the ``--alpha-sigma`` option and of a params file."""
    return ",".join(f"{alpha:g}:{sigma:g}" for alpha, sigma in pairs)


def check_ignore_index(ignore_index: int | None) -> None:
    """A [`UsageError`][nsegaug.errors.UsageError] unless ``ignore_index`` is None or an integer a label map can
    hold."""
    if ignore_index is None:
        return
    if isinstance(ignore_index, bool) or not isinstance(ignore_index, numbers.Integral):
        raise UsageError(f"ignore_index must be an integer or None, got {ignore_index!r}")
    low, high = IGNORE_INDEX_RANGE
    if not low <= ignore_index <= high:
        raise UsageError(f"ignore_index {ignore_index} can occur in no label map (8-, 16- or 32-bit)")


def check_copies(copies: int) -> int:
    """``copies`` if it is a count of copies a run can make (1..MAX_COPIES), else a
    [`UsageError`][nsegaug.errors.UsageError]."""
    if isinstance(copies, bool) or not isinstance(copies, numbers.Integral) or not 1 <= copies <= MAX_COPIES:
        raise UsageError(f"copies must be a whole number in [1, {MAX_COPIES}], got {copies!r}")
    return int(copies)


def check_prob(prob: float) -> float:
    """``prob`` if it is a probability, else a [`UsageError`][nsegaug.errors.UsageError]."""
    if not (_is_number(prob) and 0 <= prob <= 1):
        raise UsageError(f"prob must be in [0, 1], got {prob!r}")
    return prob


def _plain(value: numbers.Real) -> int | float:
    """A Python int or float of the same value (a Python number is returned as it is)."""
    return int(value) if isinstance(value, numbers.Integral) else float(value)


def _is_number(value) -> bool:
    # numbers.Real, not (int, float): NumPy's scalars count too, booleans do not.
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


# In the order of their random streams (a new model goes last, so the others keep their draws). The noise
# applies "bias" first, as an annotator's habit under the random imprecision of the others.
NOISE_MODELS = ("boundary", "simplify", "jitter", "bias")


@dataclass(frozen=True)
class NoiseParams:
    """How ``nsegaug noise`` makes annotation errors ([`nsegaug.noise_models`][nsegaug.noise_models]); sizes in pixels
    of the map.

    Checked once, on creation ([`UsageError`][nsegaug.errors.UsageError]); ``to_dict`` is what the
    noise manifest's metadata records.
    """

    models: tuple[str, ...] = field(
        default=NOISE_MODELS[:3], metadata=_spec("Noise models, applied bias, boundary, simplify, jitter.")
    )
    max_radius: int = field(
        default=3, metadata=_spec("boundary: each object grown or shrunk by its own radius in -R..R px.")
    )
    max_epsilon: float = field(
        default=2.5, metadata=_spec("simplify: each outline simplified with a tolerance in [0, E] px.")
    )
    jitter_amplitude: float = field(
        default=1.0, metadata=_spec("jitter: standard deviation of a smooth displacement, px (clipped at 2x).")
    )
    jitter_sigma: float = field(default=16.0, metadata=_spec("jitter: how slowly the displacement varies, px."))
    bias_radius: int = field(
        default=2, metadata=_spec("bias: every object drawn R px too wide or too narrow (one annotator's habit).")
    )
    bias_wide: float = field(
        default=0.5, metadata=_spec("bias: chance that a map's annotator draws too wide (1: always, 0: never).")
    )
    bias_classes: tuple[int, ...] | None = field(
        default=None, metadata=_spec("bias: only these classes, as A,B,...  [default: all]")
    )
    ignore_index: int | None = field(
        default=255, metadata=_spec("Label value that is never an object: never grown, shrunk or simplified.")
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "models", tuple(self.models))
        unknown = sorted(set(self.models) - set(NOISE_MODELS))
        if unknown or not self.models:
            raise UsageError(f"noise models must be some of {', '.join(NOISE_MODELS)}, got {', '.join(self.models)}")
        sizes = {name: getattr(self, name) for name in ("max_radius", "max_epsilon", "jitter_amplitude", "bias_radius")}
        for name, value in sizes.items():
            if not (_is_number(value) and math.isfinite(value) and value >= 0):
                raise UsageError(f"{name} must be a finite number of pixels >= 0, got {value!r}")
        for name in ("max_radius", "bias_radius"):  # structuring elements: whole pixels
            value = getattr(self, name)
            if value != int(value):
                raise UsageError(f"{name} must be a whole number of pixels, got {value!r}")
            object.__setattr__(self, name, int(value))
        if not (_is_number(self.jitter_sigma) and 0 < self.jitter_sigma <= MAX_SIGMA):
            raise UsageError(f"jitter_sigma must be in (0, {MAX_SIGMA:g}] px, got {self.jitter_sigma!r}")
        if not (_is_number(self.bias_wide) and 0 <= self.bias_wide <= 1):
            raise UsageError(f"bias_wide is a chance, in [0, 1], got {self.bias_wide!r}")
        if self.bias_classes is not None:
            object.__setattr__(self, "bias_classes", tuple(int(value) for value in self.bias_classes))
        check_ignore_index(self.ignore_index)

    def to_dict(self) -> dict:
        values = dataclasses.asdict(self)
        values["models"] = list(self.models)
        if self.bias_classes is not None:
            values["bias_classes"] = list(self.bias_classes)
        return values

    @classmethod
    def from_dict(cls, values: Mapping) -> NoiseParams:
        known = {spec.name for spec in dataclasses.fields(cls)}
        return cls(**{name: value for name, value in values.items() if name in known})


# The defaults, as values: frozen, so safe as default arguments.
DEFAULT_PARAMS = DeformParams()
DEFAULT_NOISE = NoiseParams()
