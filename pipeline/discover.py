"""Finding the inputs of a scan: a directory, glob patterns or a listing file."""

from __future__ import annotations

import glob
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from .errors import FramediffError
from .video import VIDEO_EXTENSIONS, is_video, is_video_name

__all__ = ["IMAGE_EXTENSIONS", "SORT_ORDERS", "Discovery", "discover", "natural_key", "report_name", "source_kind"]

IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".tif", ".tiff", ".bmp", ".gif", ".webp", ".ppm", ".pgm", ".pnm", ".pbm"}
)
SORT_ORDERS = ("natural", "mtime", "exif", "none")
_GLOB_CHARS = re.compile(r"[*?\[]")
_DIGITS = re.compile(r"(\d+)")


@dataclass
class Discovery:
    """The ordered inputs of a scan and what was passed over.

    Attributes
    ----------
    root : Path
        Paths in reports are relative to it.
    paths : list of Path
        Image files in comparison order.
    skipped_non_image : int
        Files whose extension is not an image's.
    unreadable_dirs : list of str
        Directories that could not be listed (relative to ``root``).
    symlink_loops : int
        Directory links not followed because their target was already visited.
    times : dict of path -> float
        Capture time (seconds since the epoch, UTC) of each input when the order came
        from it: EXIF DateTimeOriginal (``sort='exif'``) or modification time
        (``sort='mtime'``).
    """

    root: Path
    paths: list = field(default_factory=list)
    skipped_non_image: int = 0
    unreadable_dirs: list = field(default_factory=list)
    symlink_loops: int = 0
    times: dict = field(default_factory=dict)

    def relative(self, path) -> str:
        """``path`` relative to :attr:`root`, with forward slashes, as the report names it.

        The name is text every writer can encode (see :func:`report_name`): bytes that
        are not UTF-8 appear as backslash escapes, ``frame_\\xff_01.jpg``.
        """
        try:
            rel = Path(os.path.relpath(path, self.root)).as_posix()
        except ValueError:  # another drive on Windows
            rel = Path(path).as_posix()
        return report_name(rel)


def report_name(name: str) -> str:
    """``name`` as valid Unicode: the bytes of a file name that are not UTF-8 (which
    Python keeps as lone surrogates, PEP 383) become ``\\xNN`` escapes.

    Arrow, Parquet, CSV and JSON writers refuse lone surrogates, so every name in a
    report goes through here. The escape is readable and names the file recognisably;
    it is not reversible for a name that contains a literal ``\\x``, so reports are
    not a way back to the bytes (the scan keeps the paths themselves).
    """
    if name.isascii():
        return name
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return os.fsencode(name).decode("utf-8", "backslashreplace")
    return name


def natural_key(text: str):
    """Sort key that orders embedded numbers by value: ``img_2`` before ``img_10``.

    Case and leading zeros only break ties between otherwise equal names, so ``IMG_3``
    sorts between ``img_2`` and ``img_10``.
    """
    parts = [(0, int(part)) if part.isdigit() else (1, part.lower()) for part in _DIGITS.split(text)]
    return parts, text


def is_image_name(name: str) -> bool:
    """True when ``name`` has an image extension (case-insensitive)."""
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def is_input_name(name: str) -> bool:
    """True when ``name`` has an image or a video extension: a scan input."""
    return is_image_name(name) or is_video_name(name)


def source_kind(path, *, probe: bool = False, timeout: float | None = 10.0) -> str | None:
    """What a scan makes of a file: ``'image'``, ``'video'`` or None (passed over).

    The extension decides first (:data:`IMAGE_EXTENSIONS`, then
    :data:`framediff.video.VIDEO_EXTENSIONS`); with
    ``probe``, a file with any other extension is opened to see whether it is a video
    (a camera's ``.dat`` or extension-less recordings under ``--recursive``).

    Parameters
    ----------
    path : str or path-like
    probe : bool
        Open files whose extension says nothing (costs an open per such file).
    timeout : float or None
        Seconds before a stalled probe gives up (the file is then passed over).
    """
    suffix = Path(str(path)).suffix.lower()
    if suffix in IMAGE_EXTENSIONS:
        return "image"
    if suffix in VIDEO_EXTENSIONS:
        return "video"
    if probe and is_video(path, timeout=timeout):
        return "video"
    return None


def _is_video_file(path) -> bool:
    """A file whose extension says nothing that FFmpeg opens as a video (probed).

    Text is never probed: FFmpeg would read a listing or a log as ANSI art (its ``tty``
    demuxer), a "video".
    """
    return not _is_text_file(path) and source_kind(path, probe=True) == "video"


def _is_text_file(path) -> bool:
    """Whether the file starts like text (a listing), not like binary data."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(4096)
    except OSError:
        return False
    return b"\0" not in head and _is_text(head)


def _is_text(head: bytes) -> bool:
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start >= len(head) - 3  # only a character cut at the end of the sample
    return True


def _walk(root: Path, recursive: bool, found: Discovery) -> list:
    paths = []
    visited = set()

    def on_error(exc):
        found.unreadable_dirs.append(found.relative(exc.filename) if exc.filename else str(exc))

    for dirpath, dirnames, filenames in os.walk(root, onerror=on_error, followlinks=True):
        try:
            st = os.stat(dirpath)
            key = (st.st_dev, st.st_ino)
        except OSError:
            continue
        if key in visited:
            found.symlink_loops += 1
            dirnames[:] = []
            continue
        visited.add(key)
        for name in filenames:
            if is_input_name(name) or (recursive and _is_video_file(Path(dirpath) / name)):
                paths.append(Path(dirpath) / name)
            else:
                found.skipped_non_image += 1
        # A directory named like an image is an input (it becomes an error row), not silence.
        paths.extend(Path(dirpath) / d for d in dirnames if is_image_name(d))
        if not recursive:
            dirnames[:] = []
        else:
            dirnames.sort(key=natural_key)
    return paths


def _read_listing(listing: Path) -> list:
    try:
        lines = listing.read_text(encoding="utf-8", errors="surrogateescape").splitlines()
    except OSError as exc:
        raise FramediffError(f"{listing}: cannot read the listing file ({exc.strerror})") from None
    base = listing.parent
    out = []
    for line in lines:
        entry = line.strip()
        if entry and not entry.startswith("#"):
            p = Path(entry)
            out.append(p if p.is_absolute() else base / p)
    return out


def _exif_datetime(path: Path) -> str:
    """EXIF DateTimeOriginal as 'YYYY:MM:DD HH:MM:SS', or '' when absent."""
    try:
        from PIL import Image

        with Image.open(path) as im:
            exif = im.getexif()
            value = exif.get_ifd(0x8769).get(0x9003) or exif.get(0x0132)  # DateTimeOriginal, DateTime
            return str(value) if value else ""
    except Exception:  # unreadable files sort by name; decoding reports them later
        return ""


def _exif_seconds(stamp: str):
    """'YYYY:MM:DD HH:MM:SS' (EXIF has no time zone: read as UTC) -> epoch seconds."""
    import datetime

    try:
        when = datetime.datetime.strptime(stamp.strip()[:19], "%Y:%m:%d %H:%M:%S")
    except ValueError:
        return None
    return when.replace(tzinfo=datetime.timezone.utc).timestamp()


def _mtime(path: Path) -> float:
    try:
        return os.stat(path).st_mtime
    except OSError:
        return float("inf")


class UrlDiscovery(Discovery):
    """Inputs found at fsspec URLs; report names are relative to the common prefix."""

    def relative(self, path) -> str:
        root = str(self.root).rstrip("/") + "/"
        text = str(path)
        return report_name(text[len(root) :] if text.startswith(root) else text)


def _discover_urls(sources, recursive, sort) -> Discovery:
    from .remote import is_url, list_images

    if not all(is_url(s) for s in sources):
        raise FramediffError("mix of URLs and local paths: give one kind of source")
    if sort in ("mtime", "exif"):
        raise FramediffError(f"--sort {sort} is not available for URLs; use natural or none")
    urls, skipped = [], 0
    for source in sources:
        found_urls, n_skipped = list_images(source, recursive=recursive, is_image_name=is_image_name)
        urls.extend(found_urls)
        skipped += n_skipped
    if not urls:
        return UrlDiscovery(root=sources[0], skipped_non_image=skipped)
    prefix = os.path.commonprefix(urls)
    root = prefix[: prefix.rfind("/")] if "/" in prefix.split("://", 1)[1] else prefix
    found = UrlDiscovery(root=root, skipped_non_image=skipped)
    unique = list(dict.fromkeys(urls))
    if sort == "natural":
        unique.sort(key=lambda u: natural_key(found.relative(u)))
    found.paths = unique
    return found


def discover(source, *, recursive: bool = False, sort: str = "natural") -> Discovery:
    """List the images of ``source`` in comparison order.

    Parameters
    ----------
    source : str, path or sequence of them
        A directory; a glob pattern (``'cam/*.jpg'``, ``'**'`` with ``recursive``); a
        text file listing one path per line (``#`` comments, relative to the file); or
        a sequence of any of these.
    recursive : bool
        Descend into subdirectories (symlinked directories are followed once).
    sort : {'natural', 'mtime', 'exif', 'none'}
        Natural sort of the relative path (default); modification time; EXIF
        DateTimeOriginal (files without it last, by name); or the given order.

    Returns
    -------
    Discovery

    Raises
    ------
    FramediffError
        ``source`` does not exist, matches nothing readable, or ``sort`` is unknown.
    """
    if sort not in SORT_ORDERS:
        raise FramediffError(f"unknown sort order {sort!r}; choose from: {', '.join(SORT_ORDERS)}")
    sources = [source] if isinstance(source, (str, os.PathLike)) else list(source)
    if not sources:
        raise FramediffError("no input given")
    from .remote import is_url

    if any(is_url(os.fspath(item)) for item in sources):
        return _discover_urls([os.fspath(item) for item in sources], recursive, sort)
    collected = []
    roots = []
    found = Discovery(root=Path("."))
    for item in sources:
        text = os.fspath(item)
        path = Path(text)
        if path.is_dir():
            found.root = path
            roots.append(path)
            collected.extend(_walk(path, recursive, found))
        elif path.is_file() and (is_input_name(text) or (path.stat().st_size and not _is_text_file(path))):
            # A video, or binary data given as one (its row says why it is not): a
            # listing is text.
            collected.append(path)
            roots.append(path.parent)
        elif path.is_file() and not is_image_name(text):
            listed = _read_listing(path)
            roots.extend(p.parent for p in listed)
            collected.extend(listed)
        elif _GLOB_CHARS.search(text):
            matches = sorted(glob.glob(text, recursive=recursive))
            for m in matches:
                if is_input_name(m):
                    collected.append(Path(m))
                elif os.path.isfile(m):
                    found.skipped_non_image += 1
            roots.extend(Path(m).parent for m in matches)
        elif path.exists() or is_image_name(text):
            collected.append(path)  # a single image (a missing one becomes an error row)
            roots.append(path.parent)
        else:
            raise FramediffError(f"{text}: no such file or directory")
    found.root = Path(os.path.commonpath([os.path.abspath(r) for r in roots])) if roots else Path(".")
    if len(roots) == 1 and Path(sources[0]).is_dir():
        found.root = Path(sources[0])
    unique = list(dict.fromkeys(collected))
    if sort == "natural":
        unique.sort(key=lambda p: natural_key(found.relative(p)))
    elif sort == "mtime":
        unique.sort(key=lambda p: (_mtime(p), natural_key(found.relative(p))))
        found.times = {p: _mtime(p) for p in unique if _mtime(p) != float("inf")}
    elif sort == "exif":
        stamps = {p: _exif_datetime(p) for p in unique}
        unique.sort(key=lambda p: (stamps[p] == "", stamps[p], natural_key(found.relative(p))))
        found.times = {p: t for p in unique if (t := _exif_seconds(stamps[p])) is not None}
    found.paths = unique
    return found
