"""Finding the inputs of a scan: a directory, glob patterns or a listing file."""

from __future__ import annotations

import glob
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from .decode import _pillow_open
from .errors import FramediffError
from .remote import is_url, list_images
from .video import VIDEO_EXTENSIONS, is_media, is_video, is_video_name

__all__ = [
    "IMAGE_EXTENSIONS",
    "SORT_ORDERS",
    "Discovery",
    "discover",
    "natural_key",
    "read_text_file",
    "report_name",
    "source_kind",
    "source_label",
]

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
        Paths in reports are relative to it; absolute, so that a report read from
        another working directory still finds its images.
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

    def relative_path(self, path) -> str:
        """``path`` relative to :attr:`root` as the file system names it: the bytes of
        a non-UTF-8 name kept (surrogate escapes), for copying or linking the file
        under the same name -- where :meth:`relative` is the text a report shows."""
        try:
            return os.path.relpath(path, self.root)
        except ValueError:  # another drive on Windows
            return os.fspath(path)


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


def _list_dir(dirpath: str):
    """``(subdirectories, files)`` of one directory, as ``os.walk`` splits them
    (symbolic links to directories count as directories)."""
    dirs, files = [], []
    with os.scandir(dirpath) as entries:
        for entry in entries:
            try:
                is_dir = entry.is_dir()
            except OSError:
                is_dir = False
            (dirs if is_dir else files).append(entry.name)
    return dirs, files


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


def _is_media_file(path) -> bool:
    """A file FFmpeg opens as media (an audio file too): given by name, it is an input."""
    return not _is_text_file(path) and is_media(path)


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
    """Image paths under ``root``, top-down, subdirectories in natural order.

    An explicit stack rather than ``os.walk``, which recurses once per level in
    Python 3.11: a tree a thousand folders deep must not raise ``RecursionError``.
    """
    paths = []
    visited = set()
    pending = [os.fspath(root)]
    while pending:
        dirpath = pending.pop()
        try:
            st = os.stat(dirpath)
            dirnames, filenames = _list_dir(dirpath)
        except OSError as exc:
            found.unreadable_dirs.append(found.relative(exc.filename) if exc.filename else str(exc))
            continue
        key = (st.st_dev, st.st_ino)
        if key in visited:
            found.symlink_loops += 1
            continue
        visited.add(key)
        for name in filenames:
            if is_input_name(name) or (recursive and _is_video_file(Path(dirpath) / name)):
                paths.append(Path(dirpath) / name)
            else:
                found.skipped_non_image += 1
        # A directory named like an image is an input (it becomes an error row), not silence.
        paths.extend(Path(dirpath) / d for d in dirnames if is_image_name(d))
        if recursive:
            dirnames.sort(key=natural_key)
            pending.extend(os.path.join(dirpath, d) for d in reversed(dirnames))  # first on top
    return paths


#: Bytes looked at to tell a text listing from a binary file.
_SNIFF_BYTES = 1 << 16


def read_text_file(path, what: str, *, binary: str = "") -> str:
    """The contents of a file that must be text (a listing, a pair list).

    Non-UTF-8 bytes in file names are kept (surrogate escapes), but a file with NUL
    bytes is binary: a video, an image or a report given where text was expected.

    Parameters
    ----------
    path : str or path-like
    what : str
        What the file is for, for the message (``'listing'``, ``'pair list'``).
    binary : str, optional
        What else a binary file was tried as, for the message (``'an image'``).

    Returns
    -------
    str

    Raises
    ------
    FramediffError
        One line naming the file: it cannot be read, or it is binary.
    """
    try:
        with open(path, "rb") as fh:
            head = fh.read(_SNIFF_BYTES)
            if b"\0" in head:  # before reading the rest: it may be a long video
                raise FramediffError(_binary_message(path, what, binary))
            data = head + fh.read()
    except OSError as exc:
        raise FramediffError(f"{path}: cannot read the {what} ({exc.strerror})") from None
    if b"\0" in data:
        raise FramediffError(_binary_message(path, what, binary))
    return data.decode("utf-8", errors="surrogateescape")


def _binary_message(path, what: str, binary: str) -> str:
    also = f"{binary} framediff can read, nor " if binary else ""
    return (
        f"{path}: a binary file, neither {also}a text {what}" if binary else f"{path}: a binary file, not a text {what}"
    )


def _is_image_file(path: Path) -> bool:
    """True when an image library recognises the file's header, whatever its name."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(_SNIFF_BYTES)
    except OSError:
        return False
    if head.startswith(b"\xff\xd8\xff"):
        return True
    try:
        _pillow_open(head).close()  # the header only: Pillow opens lazily
    except Exception:  # Pillow raises several types for what it does not know
        return False
    return True


def _read_listing(listing: Path) -> list:
    lines = read_text_file(listing, "listing of paths", binary="an image or video").splitlines()
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


def source_label(sources) -> str:
    """The source(s) of a scan as a message names them: ``in``, ``a, b`` -- never the
    repr of a list."""
    if isinstance(sources, (str, os.PathLike)):
        return os.fspath(sources)
    return ", ".join(os.fspath(s) for s in sources)


def _skipped_note(found: Discovery) -> str:
    n = found.skipped_non_image
    return f" ({n} file{'s' if n != 1 else ''} without an image extension)" if n else ""


class UrlDiscovery(Discovery):
    """Inputs found at fsspec URLs; report names are relative to the common prefix."""

    def relative(self, path) -> str:
        root = str(self.root).rstrip("/") + "/"
        text = str(path)
        return report_name(text[len(root) :] if text.startswith(root) else text)


def _discover_urls(sources, recursive, sort) -> Discovery:
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
        note = f" ({skipped} file{'s' if skipped != 1 else ''} without an image extension)" if skipped else ""
        raise FramediffError(f"{source_label(sources)}: no images found{note}")
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
        ``source`` does not exist, matches no image, is a binary file that is not an
        image, or ``sort`` is unknown. One line, naming the source.
    """
    if sort not in SORT_ORDERS:
        raise FramediffError(f"unknown sort order {sort!r}; choose from: {', '.join(SORT_ORDERS)}")
    sources = [source] if isinstance(source, (str, os.PathLike)) else list(source)
    if not sources:
        raise FramediffError("no input given")
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
        elif path.is_file() and (is_input_name(text) or _is_image_file(path) or _is_media_file(path)):
            # An image or video named as one or recognised by its header (.avif, .dat, none),
            # or media without a usable video stream (its row says why).
            collected.append(path)
            roots.append(path.parent)
        elif path.is_file() and not is_image_name(text):
            listed = _read_listing(path)
            roots.extend(p.parent for p in listed)
            collected.extend(listed)
        elif _GLOB_CHARS.search(text):
            try:
                matches = sorted(glob.glob(text, recursive=recursive))
            except RecursionError:  # the standard library's "**" recurses per level
                raise FramediffError(
                    f"{text}: folders nested too deep for a glob pattern; give the folder with --recursive"
                ) from None
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
    found.root = Path(os.path.commonpath([os.path.abspath(r) for r in roots])) if roots else Path(".").absolute()
    if len(roots) == 1 and Path(sources[0]).is_dir():
        found.root = Path(os.path.abspath(sources[0]))
    unique = list(dict.fromkeys(collected))
    if not unique:
        raise FramediffError(f"{source_label(sources)}: no images found{_skipped_note(found)}")
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
