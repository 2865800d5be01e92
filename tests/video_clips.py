"""Generated clips shared by the video tests: good ones of every structure, and damaged ones."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from framediff.synthetic_video import make_clip

#: Small frames keep every clip under a second to write on a loaded machine.
SIZE = (96, 128)
N_FRAMES = 120
GOP = 25


def good_clips(directory) -> dict:
    """name -> VideoTruth for each stream structure a seek must handle."""
    specs = {
        "closed.mp4": dict(bframes=2),
        "open_gop.mp4": dict(bframes=3, open_gop=True),
        "open_gop.mkv": dict(bframes=3, open_gop=True),
        "vfr.mkv": dict(bframes=2, vfr=True),
        "mpeg2.ts": dict(codec="mpeg2video", bframes=2),
        "stamped.mp4": dict(bframes=0, creation_time="2024-05-01T12:00:00.000000Z"),
    }
    return {
        name: make_clip(directory / name, n_frames=N_FRAMES, size=SIZE, gop=GOP, seed=k, **kw)
        for k, (name, kw) in enumerate(specs.items())
    }


def first_p_frame(path, start: int) -> int:
    """Index of the first P-frame at or after ``start`` (a frame others refer to)."""
    import av

    with av.open(str(path)) as container:
        kinds = {f.pts: int(f.pict_type) for f in container.decode(video=0)}
    stamps = sorted(kinds)
    return next(i for i in range(start, len(stamps)) if kinds[stamps[i]] == int(av.video.frame.PictureType.P))


def damage_packet(src, dst, frame: int, *, seed: int = 1) -> None:
    """Copy ``src`` to ``dst`` with the last three quarters of one frame's packet replaced
    by seeded random bytes (the container's structure is left intact)."""
    import av

    with av.open(str(src)) as container:
        packets = [(p.pts, p.pos, p.size) for p in container.demux(video=0) if p.size]
    stamps = sorted(p[0] for p in packets)
    _, pos, size = next(p for p in packets if p[0] == stamps[frame])
    data = bytearray(Path(src).read_bytes())
    junk = np.random.default_rng(seed).integers(0, 256, size - size // 4, dtype=np.uint8)
    data[pos + size // 4 : pos + size] = junk.tobytes()
    Path(dst).write_bytes(bytes(data))


def write_audio_only(path, n_frames: int) -> None:
    """An AAC file with ``n_frames`` silent audio frames and no video stream."""
    import av
    import numpy as np

    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=8000)
        for i in range(n_frames):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            frame.sample_rate, frame.pts = 8000, i * 1024
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
