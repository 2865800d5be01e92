"""Deterministic synthetic time-lapses with known events, for the demo, tests and benchmark.

A static scene is built once from a real colour photograph (``skimage.data``). Every frame
is that scene under a slow global lighting drift plus fresh Gaussian sensor noise; with
``events=True`` a known set of changes is placed at fixed fractions of the run: an object
crossing the view, a light switched on and later off, a camera shake, exact duplicate frames
and one truncated (corrupt) file. The ground truth comes back as a :class:`Timelapse` and can
be written to ``truth.json``.

Frame ``i`` (0-based) is written as ``frame_{i + 1:05d}.jpg`` (or ``.png``), so the natural
order of the names is the time order.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

__all__ = [
    "EVENT_KINDS",
    "FORMATS",
    "MIN_FRAMES_WITH_EVENTS",
    "PHOTOS",
    "Event",
    "Timelapse",
    "make_frames",
    "make_timelapse",
]

EVENT_KINDS = ("object", "light-on", "light-off", "shake", "corrupt")
FORMATS = ("jpg", "png")
PHOTOS = ("astronaut", "coffee", "chelsea")
MIN_FRAMES_WITH_EVENTS = 40

# Event layout. Each event starts at round(fraction * n_frames) unless that is closer than
# _GAP frames to where the previous one stopped changing the picture.
_GAP = 4
_FRACTIONS = {
    "object": 0.08,
    "duplicate": 0.25,
    "light-on": 0.36,
    "light-off": 0.50,
    "shake": 0.62,
    "duplicate-run": 0.74,
    "corrupt": 0.86,
}
_LIGHT_GAIN = 1.4  # brightness factor while the light is on
_OBJECT_AREA = 0.03  # disc area as a fraction of the image area
_SHAKE_RANGE = (8, 15)  # |shift| in pixels along each axis
_MARGIN = 16  # scene border kept around the view so a shake never shows an edge
_CORRUPT_KEEP = 0.30  # fraction of the encoded bytes kept in the corrupt file
# Seed-sequence streams other than the per-frame ones, (seed, i) for frame i. Two words so
# they never collide with (seed, i) for any frame index i < 2**32.
_PLAN_STREAM = 2**32 + 1
_NOISE_STREAM = 2**32 + 2
_OBJECT_COLOURS = ((230, 40, 40), (40, 200, 60), (40, 80, 230), (240, 200, 30), (220, 40, 220))


@dataclass(frozen=True)
class Event:
    """One known change in a synthetic time-lapse.

    Attributes
    ----------
    kind : str
        One of ``EVENT_KINDS``.
    first : int
        Index (0-based, into the sorted frame list) of the first frame that differs from its
        predecessor because of the event.
    last : int
        Index of the last frame of the event. For ``'object'`` and ``'shake'`` the frame after
        ``last`` also differs from ``last``, as the scene returns to normal.
    note : str
        Human-readable details (sizes, shifts, factors).
    """

    kind: str
    first: int
    last: int
    note: str


@dataclass
class Timelapse:
    """A synthetic time-lapse on disk and its ground truth.

    Attributes
    ----------
    directory : Path
        Where the frames were written.
    frames : list of Path
        All frame files in time order, the corrupt one included.
    events : list of Event
        The known events, in time order.
    duplicates : list of int
        Indices ``i`` whose pixels are identical to those of frame ``i - 1``.
    corrupt : list of int
        Indices of files that cannot be decoded.
    size : tuple of int
        Frame size ``(height, width)``.
    params : dict
        The arguments the time-lapse was made with.
    """

    directory: Path
    frames: list[Path]
    events: list[Event]
    duplicates: list[int]
    corrupt: list[int]
    size: tuple[int, int]
    params: dict = field(default_factory=dict)

    def changed_frames(self) -> list[int]:
        """Return the indices of frames expected to differ clearly from their predecessor.

        Returns
        -------
        list of int
            Sorted indices: every frame from ``first`` to ``last`` of each event, plus the
            frame after an ``'object'`` or ``'shake'`` event (the scene returning). Corrupt
            frames are left out: they cannot be compared.
        """
        changed = set()
        for event in self.events:
            if event.kind == "corrupt":
                continue
            last = event.last + 1 if event.kind in ("object", "shake") else event.last
            changed.update(range(event.first, last + 1))
        return sorted(changed)

    def to_dict(self) -> dict:
        """Return the ground truth as plain JSON-ready data (frame names, not paths)."""
        return {
            "frames": [path.name for path in self.frames],
            "size": list(self.size),
            "events": [asdict(event) for event in self.events],
            "duplicates": list(self.duplicates),
            "corrupt": list(self.corrupt),
            "changed": self.changed_frames(),
            "params": dict(self.params),
        }

    def to_json(self) -> str:
        """Return the ground truth as a JSON string (see :meth:`to_dict`)."""
        return json.dumps(self.to_dict(), indent=2)

    def write_truth(self, path) -> Path:
        """Write the ground truth to ``path`` (conventionally ``truth.json``) and return it."""
        path = Path(path)
        path.write_text(self.to_json() + "\n", encoding="utf-8")
        return path


@dataclass(frozen=True)
class _FrameSpec:
    """What one frame shows: lighting gain, camera shift, object centre, or a repeat."""

    gain: float
    shift: tuple[int, int] = (0, 0)
    object_x: float | None = None
    repeat: bool = False


@dataclass(frozen=True)
class _Object:
    """The moving disc: radius, row of its centre and colour."""

    radius: int
    row: int
    colour: tuple[int, int, int]


@dataclass(frozen=True)
class _Plan:
    """Everything decided before rendering: per-frame specs and the ground truth."""

    specs: list[_FrameSpec]
    events: list[Event]
    duplicates: list[int]
    corrupt: list[int]
    disc: _Object | None


def make_timelapse(
    directory,
    *,
    n_frames: int = 60,
    size: tuple[int, int] = (240, 320),
    seed: int = 0,
    fmt: str = "jpg",
    quality: int = 90,
    events: bool = True,
    noise_sigma: float = 2.0,
    drift: float = 0.15,
    photo: str = "astronaut",
) -> Timelapse:
    """Write a deterministic synthetic time-lapse to ``directory``.

    Parameters
    ----------
    directory : str or Path
        Output folder, created if missing. Files with the frame names are overwritten;
        other files are left alone.
    n_frames : int
        Number of frame files, the corrupt one included.
    size : tuple of int
        Frame size ``(height, width)``; each at least 32.
    seed : int
        Seed for the noise and the event details. Same arguments, same bytes.
    fmt : {'jpg', 'png'}
        File format; ``'jpeg'`` is accepted as ``'jpg'``.
    quality : int
        JPEG quality, 1 to 100 (4:2:0 chroma subsampling). Ignored for PNG.
    events : bool
        Place the known events (needs ``n_frames >= 40``); otherwise only drift and noise.
    noise_sigma : float
        Standard deviation of the sensor noise, in 8-bit levels, per channel.
    drift : float
        Total relative brightness change over the run: the lighting gain falls linearly
        from 1 at the first frame to ``1 - drift`` at the last.
    photo : {'astronaut', 'coffee', 'chelsea'}
        The ``skimage.data`` photograph the scene is made from.

    Returns
    -------
    Timelapse
        Paths and ground truth.

    Raises
    ------
    ValueError
        An unknown ``fmt`` or ``photo``, or out-of-range ``n_frames``, ``size``,
        ``quality``, ``noise_sigma`` or ``drift``.

    Notes
    -----
    Events start at fixed fractions of the run (object 0.08, duplicate 0.25, light on 0.36,
    light off 0.50, shake 0.62, two duplicates 0.74, corrupt file 0.86), pushed later where
    needed so that each starts at least 4 frames after the previous one stopped changing the
    picture. The object crosses in ``clip(n_frames // 12, 3, 8)`` frames. With the default
    60 frames: object 5-9 (gone at 10), duplicate 15, light on 22 and off 30, shake 37-38
    (back at 39), duplicates 44-45, corrupt file 52.

    Examples
    --------
    >>> timelapse = make_timelapse("demo_frames", n_frames=60)  # doctest: +SKIP
    >>> timelapse.write_truth("demo_truth.json")  # doctest: +SKIP
    """
    fmt = _check_format(fmt)
    if not 1 <= quality <= 100:
        raise ValueError(f"quality must be in 1..100, got {quality}")
    size = _check_size(size)
    _check_noise_sigma(noise_sigma)
    plan = _make_plan(n_frames, size, seed, events, drift)
    base = _scene(size, photo)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    width = max(5, len(str(n_frames)))
    frames = [directory / f"frame_{i + 1:0{width}d}.{fmt}" for i in range(n_frames)]
    data = b""
    for i, (spec, path) in enumerate(zip(plan.specs, frames)):
        if not spec.repeat:
            image = _render(base, spec, plan.disc, _noise(base, noise_sigma, seed, i), size)
            data = _encode(image, fmt, quality)
        if i in plan.corrupt:
            path.write_bytes(data[: int(len(data) * _CORRUPT_KEEP)])
        else:
            path.write_bytes(data)
    params = {
        "n_frames": n_frames,
        "size": list(size),
        "seed": seed,
        "fmt": fmt,
        "quality": quality,
        "events": events,
        "noise_sigma": noise_sigma,
        "drift": drift,
        "photo": photo,
    }
    return Timelapse(directory, frames, plan.events, plan.duplicates, plan.corrupt, size, params)


def make_frames(
    n: int,
    *,
    size: tuple[int, int] = (240, 320),
    seed: int = 0,
    events: bool = False,
    noise_sigma: float = 2.0,
    drift: float = 0.15,
    photo: str = "astronaut",
) -> Iterator[np.ndarray]:
    """Yield the frames of a synthetic time-lapse as arrays, without writing files.

    Parameters
    ----------
    n : int
        Number of frames.
    size, seed, events, noise_sigma, drift, photo
        As for :func:`make_timelapse`.

    Yields
    ------
    ndarray of uint8, shape (height, width, 3)
        One RGB frame at a time. A duplicate is the same array object as its predecessor;
        the frame that :func:`make_timelapse` would corrupt is yielded intact.
    """
    size = _check_size(size)
    _check_noise_sigma(noise_sigma)
    plan = _make_plan(n, size, seed, events, drift)
    base = _scene(size, photo)
    image = None
    for i, spec in enumerate(plan.specs):
        if not spec.repeat:
            image = _render(base, spec, plan.disc, _noise(base, noise_sigma, seed, i), size)
        yield image


def _check_format(fmt: str) -> str:
    fmt = fmt.lower().lstrip(".")
    if fmt == "jpeg":
        fmt = "jpg"
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
    return fmt


def _check_size(size) -> tuple[int, int]:
    height, width = (int(s) for s in size)
    if min(height, width) < 32:
        raise ValueError(f"size must be at least (32, 32), got {tuple(size)}")
    return height, width


def _check_noise_sigma(sigma: float) -> None:
    if not sigma >= 0:
        raise ValueError(f"noise_sigma must be >= 0, got {sigma}")


def _make_plan(n_frames: int, size: tuple[int, int], seed: int, events: bool, drift: float) -> _Plan:
    """Decide every frame's content and the ground truth, before any pixel is made."""
    if not 0 <= drift < 1:
        raise ValueError(f"drift must be in [0, 1), got {drift}")
    if n_frames < 1:
        raise ValueError(f"n_frames must be at least 1, got {n_frames}")
    gains = 1.0 - drift * np.arange(n_frames) / max(n_frames - 1, 1)
    specs = [_FrameSpec(gain=float(g)) for g in gains]
    if not events:
        return _Plan(specs, [], [], [], None)
    if n_frames < MIN_FRAMES_WITH_EVENTS:
        raise ValueError(f"events need n_frames >= {MIN_FRAMES_WITH_EVENTS}, got {n_frames}")
    return _place_events(specs, size, np.random.default_rng((seed, _PLAN_STREAM)))


def _place_events(specs: list[_FrameSpec], size: tuple[int, int], rng) -> _Plan:
    """Put the events into ``specs`` at their fractions of the run, ``_GAP`` frames apart."""
    n_frames = len(specs)
    height, width = size
    free = 0  # first index a new event may start at

    def start(name: str) -> int:
        return max(round(_FRACTIONS[name] * n_frames), free)

    events, duplicates = [], []
    # (a) A disc crossing the view horizontally over `steps` frames.
    radius = max(2, round(np.sqrt(_OBJECT_AREA * height * width / np.pi)))
    disc = _Object(
        radius=radius,
        row=int(rng.integers(height // 3, 2 * height // 3 + 1)),
        colour=_OBJECT_COLOURS[int(rng.integers(len(_OBJECT_COLOURS)))],
    )
    steps = min(max(n_frames // 12, 3), 8)
    first = start("object")
    travel = np.linspace(-radius, width + radius, steps + 2)[1:-1]
    if rng.integers(2):
        travel = travel[::-1]
    for k, x in enumerate(travel):
        specs[first + k] = _with(specs[first + k], object_x=float(x))
    direction = "left to right" if travel[0] < travel[-1] else "right to left"
    note = f"disc r={radius} px crossing {direction}"
    events.append(Event("object", first, first + steps - 1, note))
    free = first + steps + _GAP  # the frame after the last also changes
    # (d) A single duplicate frame.
    first = start("duplicate")
    specs[first] = _with(specs[first], repeat=True)
    duplicates.append(first)
    free = first + _GAP
    # (b) Light on for the rest of a segment, then off again.
    on = start("light-on")
    free = on + _GAP
    off = start("light-off")
    for i in range(on, off):
        specs[i] = _with(specs[i], gain=specs[i].gain * _LIGHT_GAIN)
    events.append(Event("light-on", on, on, f"brightness x{_LIGHT_GAIN:.2f} until frame {off - 1}"))
    events.append(Event("light-off", off, off, f"brightness back to x1 after frame {off - 1}"))
    free = off + _GAP
    # (c) A camera shake: two shifted frames, then back.
    first = start("shake")
    shifts = [_shake_shift(rng) for _ in range(2)]
    for k, shift in enumerate(shifts):
        specs[first + k] = _with(specs[first + k], shift=shift)
    note = f"shift (dy, dx) {shifts[0]} then {shifts[1]} px"
    events.append(Event("shake", first, first + 1, note))
    free = first + 2 + _GAP
    # (d) A run of two duplicates of the same frame.
    first = start("duplicate-run")
    for i in (first, first + 1):
        specs[i] = _with(specs[i], repeat=True)
        duplicates.append(i)
    free = first + 1 + _GAP
    # (e) One file truncated to a fraction of its bytes.
    corrupt = start("corrupt")
    note = f"truncated to {_CORRUPT_KEEP:.0%} of its bytes"
    events.append(Event("corrupt", corrupt, corrupt, note))
    if corrupt + _GAP > n_frames:
        raise ValueError(f"events do not fit in {n_frames} frames")
    return _Plan(specs, events, duplicates, [corrupt], disc)


def _with(spec: _FrameSpec, **changes) -> _FrameSpec:
    fields = {**asdict(spec), **changes}
    return _FrameSpec(**fields)


def _shake_shift(rng) -> tuple[int, int]:
    low, high = _SHAKE_RANGE
    magnitude = rng.integers(low, high + 1, size=2)
    sign = rng.choice((-1, 1), size=2)
    return int(magnitude[0] * sign[0]), int(magnitude[1] * sign[1])


def _photo(photo: str) -> np.ndarray:
    """The named photograph as uint8 RGB.

    The astronaut (NASA, public domain, as shipped by scikit-image) travels with
    framediff so the demo runs without scikit-image; the others come from skimage.data.
    """
    if photo == "astronaut":
        from importlib.resources import files

        import simplejpeg

        return simplejpeg.decode_jpeg((files("framediff") / "data" / "astronaut.jpg").read_bytes())
    try:
        from skimage import data
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise ImportError(f"the {photo!r} photograph needs scikit-image (skimage.data)") from exc
    return getattr(data, photo)()


def _scene(size: tuple[int, int], photo: str) -> np.ndarray:
    """Return the static scene, float32 RGB, ``_MARGIN`` pixels larger than ``size`` all round.

    The photograph is resized (bilinear) so that its height fits the canvas, then cropped,
    or mirror-tiled, to the canvas width.
    """
    if photo not in PHOTOS:
        raise ValueError(f"unknown photo {photo!r}; expected one of {', '.join(PHOTOS)}")
    from PIL import Image

    image = _photo(photo)
    height, width = size[0] + 2 * _MARGIN, size[1] + 2 * _MARGIN
    scaled_width = max(1, round(image.shape[1] * height / image.shape[0]))
    image = np.asarray(Image.fromarray(image).resize((scaled_width, height), Image.BILINEAR))
    if scaled_width < width:
        missing = width - scaled_width
        pad = ((0, 0), (missing // 2, missing - missing // 2), (0, 0))
        image = np.pad(image, pad, mode="symmetric")
    left = (image.shape[1] - width) // 2
    return np.ascontiguousarray(image[:, left : left + width], dtype=np.float32)


def _noise(base: np.ndarray, sigma: float, seed: int, index: int):
    """Return frame ``index``'s noise plus 0.5 (for rounding), flat float32, or just 0.5.

    Drawing millions of normals per frame would cost more than encoding the frame, so one
    pool of Gaussian noise is drawn per (seed, size, sigma) and each frame takes a slice of
    it at an offset drawn from ``default_rng((seed, index))``. Within a frame the values are
    independent; two frames with different offsets get independent noise at every pixel.
    """
    if sigma == 0:
        return np.float32(0.5)
    pool = _noise_pool(base.shape, sigma, seed)
    count = (base.shape[0] - 2 * _MARGIN) * (base.shape[1] - 2 * _MARGIN) * base.shape[2]
    offset = int(np.random.default_rng((seed, index)).integers(pool.size - count + 1))
    return pool[offset : offset + count]


_POOL_CACHE: dict = {}


def _noise_pool(shape: tuple[int, ...], sigma: float, seed: int) -> np.ndarray:
    """Return (and cache the latest) Gaussian noise pool, sigma * N(0, 1) + 0.5, float32."""
    key = (shape, float(sigma), seed)
    if key not in _POOL_CACHE:
        count = (shape[0] - 2 * _MARGIN) * (shape[1] - 2 * _MARGIN) * shape[2]
        rng = np.random.default_rng((seed, _NOISE_STREAM))
        pool = rng.standard_normal(count + max(count // 8, 4096), dtype=np.float32)
        pool *= np.float32(sigma)
        pool += np.float32(0.5)
        _POOL_CACHE.clear()  # keep one pool: they can be tens of megabytes
        _POOL_CACHE[key] = pool
    return _POOL_CACHE[key]


def _render(base: np.ndarray, spec: _FrameSpec, disc: _Object | None, noise, size) -> np.ndarray:
    """Return one uint8 RGB frame: shifted view of the scene, lit, object pasted, noise added."""
    height, width = size
    dy, dx = spec.shift
    view = base[_MARGIN + dy : _MARGIN + dy + height, _MARGIN + dx : _MARGIN + dx + width]
    frame = np.multiply(view, np.float32(spec.gain))
    if spec.object_x is not None:
        _paste_disc(frame, disc, spec.object_x, spec.gain)
    frame += noise.reshape(frame.shape) if np.ndim(noise) else noise
    np.clip(frame, 0, 255, out=frame)
    return frame.astype(np.uint8)


def _paste_disc(frame: np.ndarray, disc: _Object, x: float, gain: float) -> None:
    """Paint ``disc`` centred at column ``x`` into ``frame`` in place (clipped to the frame)."""
    r = disc.radius
    x0, x1 = max(round(x) - r, 0), min(round(x) + r + 1, frame.shape[1])
    y0, y1 = max(disc.row - r, 0), min(disc.row + r + 1, frame.shape[0])
    if x0 >= x1 or y0 >= y1:
        return
    yy, xx = np.ogrid[y0:y1, x0:x1]
    inside = (yy - disc.row) ** 2 + (xx - x) ** 2 <= r * r
    colour = np.asarray(disc.colour, dtype=np.float32) * np.float32(gain)
    frame[y0:y1, x0:x1][inside] = colour


def _encode(image: np.ndarray, fmt: str, quality: int) -> bytes:
    """Encode an RGB uint8 frame as JPEG (simplejpeg, 4:2:0) or PNG (imageio)."""
    if fmt == "jpg":
        import simplejpeg

        return simplejpeg.encode_jpeg(image, quality=quality, colorspace="RGB", colorsubsampling="420")
    import imageio.v3 as iio

    return iio.imwrite("<bytes>", image, extension=".png")
