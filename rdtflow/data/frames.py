"""A camera's frames as episode files store them, read one frame (or one small block) at a time.

Recorders store frames in one of three ways, and rdtflow reads all of them in place:
- JPEG bytes as fixed-length byte strings padded with b"\\0" (agilex, RDT's fine-tuning data);
- JPEG bytes as variable-length uint8 arrays (other recorders);
- raw uint8 RGB pixels, a (T, H, W, 3) array, chunked and gzip/lzf-compressed or not (ACT's
  simulated datasets, many ALOHA recordings).
A 1000-step episode of raw 480x640 frames is 920 MB per camera, so nothing here reads a
whole camera at once: memory stays bounded however long the episodes are.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass

import h5py
import numpy as np
from PIL import Image, JpegImagePlugin

# JPEG frames are small (tens of kB): reading them in blocks saves h5py's per-access cost.
JPEG_BLOCK = 64
# Every JPEG starts with the SOI marker and ends with EOI; a frame cut short lacks the end.
JPEG_START, JPEG_END = b"\xff\xd8", b"\xff\xd9"


def encode_jpeg(image: np.ndarray, quality: int = 90) -> bytes:
    """JPEG bytes of an HxWx3 uint8 RGB image."""
    image = np.asarray(image, dtype=np.uint8)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an HxWx3 RGB image, got shape {image.shape}")
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def decode_jpeg(data: bytes) -> np.ndarray:
    """HxWx3 uint8 RGB pixels of an encoded image, whatever its stored mode (grey, CMYK, ...)."""
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("RGB"))


@dataclass(frozen=True)
class JpegCodec:
    """The JPEG encoder settings a recorder used (quantization tables and chroma subsampling),
    read from one of its frames, so that other frames can be made to look as its frames do.

    Why: a policy trained on a recorder's JPEG frames has only ever seen that codec's
    artefacts, which on an object a few pixels wide are large (4:2:0 subsampling shifts a small
    red cube's pixels by tens of levels); feeding it a simulator's or camera's raw frames is a
    shift of input distribution on exactly the object it must find. RDT's own agilex deployment
    re-encodes live frames as JPEG for the same reason.
    """

    qtables: tuple[tuple[int, ...], ...]  # one 64-entry table per component class, in the file's order
    subsampling: int  # Pillow's code: 0 = 4:4:4, 1 = 4:2:2, 2 = 4:2:0

    @classmethod
    def of(cls, data: bytes) -> JpegCodec:
        """The settings of the encoder that wrote `data`; ValueError when it is no JPEG."""
        with Image.open(io.BytesIO(data)) as image:
            if image.format != "JPEG":
                raise ValueError(f"expected a JPEG frame, got {image.format}")
            tables = tuple(tuple(table) for _, table in sorted(image.quantization.items()))
            return cls(tables, JpegImagePlugin.get_sampling(image))

    def round_trip(self, image: np.ndarray) -> np.ndarray:
        """`image` (HxWx3 uint8 RGB) encoded with these settings and decoded again."""
        buffer = io.BytesIO()
        Image.fromarray(np.asarray(image, dtype=np.uint8)).save(
            buffer, format="JPEG", qtables=[list(table) for table in self.qtables], subsampling=max(self.subsampling, 0))
        return decode_jpeg(buffer.getvalue())


def padded_byte_strings(blobs: list[bytes]) -> np.ndarray:
    """Fixed-length ``S{max_len}`` array, which numpy pads with b"\\0" exactly as agilex does."""
    max_len = max([1, *(len(blob) for blob in blobs)])  # numpy has no zero-length "S0" dtype
    return np.array(blobs, dtype=f"S{max_len}")


class CameraFrames:
    """One camera's frames in an open episode file, whichever of the three ways they are stored.

    Raises TypeError for any other dataset, naming what it holds and what was expected.
    """

    def __init__(self, dataset: h5py.Dataset) -> None:
        self.dataset = dataset
        self.variable_length = h5py.check_vlen_dtype(dataset.dtype) is not None
        padded = dataset.dtype.kind == "S" and dataset.ndim == 1
        self.is_jpeg = self.variable_length or padded
        raw = dataset.dtype == np.uint8 and dataset.ndim == 4 and dataset.shape[3] == 3
        if not (self.is_jpeg or raw):
            raise TypeError(
                f"camera dataset '{dataset.name}' has dtype {dataset.dtype} and shape {dataset.shape}; expected one JPEG "
                "per step (fixed-length byte strings or variable-length uint8 arrays) or raw uint8 RGB pixels of shape "
                "(T, H, W, 3)"
            )

    def __len__(self) -> int:
        return len(self.dataset)

    def _jpeg_bytes(self, value: np.ndarray | bytes) -> bytes:
        """Padding is stripped only from fixed-length strings: a JPEG ends with the EOI marker
        (FF D9), so trailing zeros there can only be padding, while variable-length data is exact."""
        if self.variable_length:
            return value if isinstance(value, bytes) else np.asarray(value, np.uint8).tobytes()
        return bytes(value).rstrip(b"\0")

    def pixels(self, step: int) -> np.ndarray:
        """(H, W, 3) uint8 pixels of one frame, reading only that frame."""
        if self.is_jpeg:
            return decode_jpeg(self._jpeg_bytes(self.dataset[step]))
        return np.asarray(self.dataset[step])

    def jpeg(self, step: int, quality: int = 90) -> bytes:
        """One frame as JPEG bytes: the stored ones, or raw pixels encoded (for pages and videos)."""
        return self._jpeg_bytes(self.dataset[step]) if self.is_jpeg else encode_jpeg(self.dataset[step], quality)

    def codec(self) -> JpegCodec | None:
        """The settings its JPEG frames were encoded with (read from the first), None for raw pixels."""
        return JpegCodec.of(self.jpeg(0)) if self.is_jpeg and len(self) else None

    def stored(self) -> Iterator[bytes]:
        """Every frame's stored bytes (JPEG, or raw pixels) in step order; raw frames one per read."""
        if not self.is_jpeg:
            for step in range(len(self)):
                yield np.ascontiguousarray(self.dataset[step]).tobytes()
            return
        for start in range(0, len(self), JPEG_BLOCK):
            for value in self.dataset[start : start + JPEG_BLOCK]:
                yield self._jpeg_bytes(value)
