"""Chunk codecs of the store: JPEG for colour images (one frame per chunk), zstd for everything else.

`JpegCodec` is a zarr v3 array -> bytes codec named ``robolearn.jpeg``. It is registered with zarr when
`robolearn.store` is imported, so any process that imports robolearn can read a JPEG store:

>>> import robolearn.store  # registers the codec  # doctest: +SKIP
>>> zarr.open_array("demo.zarr/data/images/front")[0].shape  # doctest: +SKIP
(480, 640, 3)

Images are RGB in the store; OpenCV wants BGR, so channels are swapped on the way in and out, which
keeps the files standard JPEGs (any decoder shows the right colours).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from zarr.abc.codec import ArrayBytesCodec
from zarr.codecs import ZstdCodec
from zarr.core.buffer import Buffer, NDBuffer
from zarr.core.common import JSON, parse_named_configuration
from zarr.registry import register_codec

from robolearn.errors import InvalidValueError
from robolearn.store.layout import Feature, StoreError

JPEG_CODEC_NAME = "robolearn.jpeg"
CODECS = ("zstd", "jpeg")


def encode_jpeg(frame: np.ndarray, quality: int) -> bytes:
    """(H, W, 3) uint8 RGB -> JPEG bytes."""
    import cv2

    ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(frame[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ValueError(f"JPEG encoding failed for a frame of shape {frame.shape}")
    return buf.tobytes()


def decode_jpeg(data, shape: tuple[int, ...]) -> np.ndarray:
    """JPEG bytes -> (H, W, 3) uint8 RGB of the expected shape; anything else is a ValueError."""
    import cv2

    rgb = getattr(cv2, "IMREAD_COLOR_RGB", None)  # OpenCV >= 4.10 decodes to RGB directly: no second pass
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR if rgb is None else rgb)
    if img is None or img.shape != tuple(shape):
        got = "undecodable bytes" if img is None else f"shape {img.shape}"
        raise ValueError(f"corrupt JPEG chunk ({len(data)} bytes): {got}, expected {tuple(shape)}")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB) if rgb is None else img


@dataclass(frozen=True)
class JpegCodec(ArrayBytesCodec):
    """JPEG for uint8 chunks of shape (1, H, W, 3): one frame per chunk."""

    quality: int = 90
    is_fixed_size = False

    def __init__(self, *, quality: int = 90) -> None:
        q = int(quality)
        if not 1 <= q <= 100:
            raise InvalidValueError(f"JPEG quality must be in 1..100, got {quality}")
        object.__setattr__(self, "quality", q)

    @classmethod
    def from_dict(cls, data: dict[str, JSON]) -> "JpegCodec":
        _, config = parse_named_configuration(data, JPEG_CODEC_NAME, require_configuration=False)
        return cls(**(config or {}))  # type: ignore[arg-type]

    def to_dict(self) -> dict[str, JSON]:
        return {"name": JPEG_CODEC_NAME, "configuration": {"quality": self.quality}}

    def validate(self, *, shape, dtype, chunk_grid) -> None:
        native = dtype.to_native_dtype()
        chunks = getattr(chunk_grid, "chunk_shape", None)
        if native != np.uint8 or len(shape) != 4 or shape[-1] != 3 or (chunks is not None and chunks[0] != 1):
            raise ValueError(f"{JPEG_CODEC_NAME} needs uint8 arrays of shape (N, H, W, 3) chunked one frame "
                             f"per chunk, got {native} {tuple(shape)} chunks {chunks}")

    async def _decode_single(self, chunk_bytes: Buffer, chunk_spec) -> NDBuffer:
        shape = tuple(chunk_spec.shape)
        frame = decode_jpeg(chunk_bytes.as_numpy_array(), shape[1:])
        return chunk_spec.prototype.nd_buffer.from_ndarray_like(frame.reshape(shape))

    async def _encode_single(self, chunk_array: NDBuffer, chunk_spec) -> Buffer | None:
        frames = chunk_array.as_numpy_array()
        data = encode_jpeg(frames[0], self.quality)
        return chunk_spec.prototype.buffer.from_bytes(data)

    def compute_encoded_size(self, input_byte_length: int, _chunk_spec) -> int:
        raise NotImplementedError  # variable size


register_codec(JPEG_CODEC_NAME, JpegCodec)


def check_codec(key: str, feature: Feature) -> None:
    """Refuse a codec the feature cannot use: JPEG only for uint8 (H, W, 3) colour images."""
    if feature.codec not in CODECS:
        raise StoreError(f"key {key!r}: unknown codec {feature.codec!r}; use one of {', '.join(CODECS)}")
    if feature.codec == "jpeg":
        if feature.dtype != "uint8" or len(feature.shape) != 3 or feature.shape[-1] != 3:
            raise StoreError(f"key {key!r}: codec 'jpeg' needs uint8 (H, W, 3) colour images, got "
                             f"{feature.dtype} {list(feature.shape)}; depth and other data stay lossless ('zstd')")
        if not 1 <= int(feature.quality) <= 100:
            raise StoreError(f"key {key!r}: JPEG quality must be in 1..100, got {feature.quality}")


def array_codecs(feature: Feature) -> dict:
    """Keyword arguments for `create_array` that store this feature with its codec."""
    if feature.codec == "jpeg":
        return {"serializer": JpegCodec(quality=feature.quality), "compressors": None}
    return {"compressors": ZstdCodec(level=3)}
