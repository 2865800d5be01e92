"""Inputs and outputs given as fsspec URLs (``s3://``, ``gs://``, ``https://``, ``file://``).

A URL is read with fsspec when the protocol's library is installed (``s3fs``,
``gcsfs``, ``aiohttp`` for HTTP...); local paths never go through here. Reports for a
URL are written to a local staging folder with the usual atomic renames, then uploaded
when complete, so a reader of the remote location never sees a partial report.
"""

from __future__ import annotations

import os
import re

from .errors import DecodeError, FramediffError

__all__ = ["filesystem", "is_url", "list_images", "read_url", "upload"]

_URL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.\-]*://")


def is_url(path) -> bool:
    """True for ``protocol://...`` strings (not for local paths)."""
    return isinstance(path, str) and bool(_URL.match(path))


def filesystem(url: str):
    """``(fs, path)`` for a URL; a clear error when fsspec or the protocol is missing."""
    try:
        import fsspec
    except ImportError:
        raise FramediffError(f"{url}: URLs need fsspec (pip install 'framediff[cluster]')") from None
    try:
        return fsspec.core.url_to_fs(url)
    except (ImportError, ValueError) as exc:
        raise FramediffError(f"{url}: {exc}") from None


def list_images(url: str, *, recursive: bool, is_image_name) -> tuple[list, int]:
    """Image URLs under a directory URL or matching a glob URL; and the non-images skipped."""
    fs, path = filesystem(url)
    protocol = url.split("://", 1)[0]
    if any(ch in path for ch in "*?["):
        found = fs.glob(path)
    elif fs.isdir(path):
        found = fs.find(path) if recursive else [p for p in fs.ls(path, detail=False)]
        found = [p for p in found if not fs.isdir(p)]
    else:
        found = [path]
    images = [p for p in found if is_image_name(p)]
    return [f"{protocol}://{p}" if not p.startswith(f"{protocol}://") else p for p in images], len(found) - len(images)


def read_url(url: str, max_bytes: int | None = None) -> bytes:
    """The bytes of one URL; failures become ``DecodeError`` like local reads."""
    fs, path = filesystem(url)
    try:
        size = fs.size(path)
        if max_bytes is not None and size is not None and size > max_bytes:
            raise DecodeError("bomb", f"{size} bytes exceed the pixel budget")
        with fs.open(path, "rb") as fh:
            data = fh.read()
    except FileNotFoundError:
        raise DecodeError("missing", "no such object") from None
    except PermissionError:
        raise DecodeError("permission", "permission denied") from None
    except OSError as exc:
        raise DecodeError("unreadable", str(exc) or type(exc).__name__) from None
    if not data:
        raise DecodeError("empty", "zero-byte file")
    return data


def upload(local_paths, url_dir: str) -> None:
    """Copy finished local files into the output URL's folder."""
    fs, path = filesystem(url_dir)
    fs.makedirs(path, exist_ok=True)
    for local in local_paths:
        fs.put_file(os.fspath(local), f"{path.rstrip('/')}/{os.path.basename(local)}")
