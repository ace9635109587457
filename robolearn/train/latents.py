"""Encode a store's frames once and keep the latents in the store (``latents/<camera>``), so PAD and
UWM train without running the autoencoder every step (what PAD's authors advise; UWM encodes online).

Latent caching joins a store and an autoencoder, so it lives here, above both: the store keeps the
arrays (`robolearn.store.latents`), the policies know tensors only and say which cached latents they
accept (`Model.data_requirements(cached_latents)`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import torch

from robolearn.errors import InvalidValueError
from robolearn.output import check_output
from robolearn.policies.latent.autoencoder import Autoencoder, fingerprint, load_autoencoder
from robolearn.spaces import IMAGES, image_key, key_name, latent_key
from robolearn.store.latents import latent_features, latent_info, write_latents
from robolearn.store.reader import Store


@torch.no_grad()
def encode_frames(ae: Autoencoder, frames: np.ndarray, device: torch.device | str = "cpu") -> np.ndarray:
    """(N, H, W, 3) uint8 -> (N, C, h, w) float32 scaled latents."""
    x = torch.from_numpy(np.ascontiguousarray(frames)).to(device).permute(0, 3, 1, 2).float().div_(255.0)
    return ae.encode(x).float().cpu().numpy()


def cache_latents(store_path: str | os.PathLike, autoencoder: Autoencoder | str | os.PathLike,
                  cameras: Sequence[str] | None = None, batch_size: int = 64, dtype: str = "float16",
                  device: str = "cpu") -> dict:
    """Write ``latents/<camera>`` for every camera (default: all ``images/*`` of the store).

    `autoencoder` is a loaded autoencoder or a folder `load_autoencoder` accepts. Returns, per key,
    the shape, the latents' std (about 1 when the scale factor fits this data) and the fingerprint.
    The store must be a robolearn store of a schema this robolearn knows (the output guard's check, before
    the autoencoder loads); only its ``latents/<camera>`` arrays are written (`write_latents`).
    """
    check_output(store_path, "store", resume=True)  # a user's folder, a newer store: refused, left as it is
    store = Store.open(store_path)
    source = str(autoencoder) if isinstance(autoencoder, (str, os.PathLike)) else ""
    ae = load_autoencoder(autoencoder) if source else autoencoder.eval()
    ae = ae.to(device)
    cams = list(cameras) if cameras else sorted(key_name(k) for k in store.features if k.startswith(IMAGES))
    if not cams:
        raise InvalidValueError(f"store {store_path} has no images/<camera> keys to encode.")
    fp = fingerprint(ae)
    summary = {}
    for cam in cams:
        key = image_key(cam)
        if key not in store.features:
            raise InvalidValueError(f"store {store_path} has no key {key!r} (it has {sorted(store.features)}).")
        shape = ae.latent_shape(tuple(store.features[key].shape[:2]))
        moments = [0.0, 0.0, 0]

        def blocks():
            for start in range(0, store.n_frames, batch_size):
                z = encode_frames(ae, store.read(key, start, min(start + batch_size, store.n_frames)), device)
                moments[0] += float(z.sum())
                moments[1] += float((z.astype(np.float64) ** 2).sum())
                moments[2] += z.size
                yield z

        write_latents(store_path, cam, blocks(), shape, dtype,
                      {"autoencoder": source, "fingerprint": fp, "scale": float(ae.scale)})
        mean = moments[0] / max(1, moments[2])
        std = float(np.sqrt(max(0.0, moments[1] / max(1, moments[2]) - mean ** 2)))
        summary[latent_key(cam)] = {"shape": list(shape), "dtype": dtype, "frames": store.n_frames,
                                     "std": std, "fingerprint": fp}
    return summary


def cached_latents(store: Store) -> dict[str, dict]:
    """``latents/<camera>`` -> attrs (``fingerprint``, ...) of every cached latent array that covers the
    store's committed frames: what `Model.data_requirements` may ask for instead of frames."""
    info = latent_info(store)
    return {key: dict(info[key]) for key in latent_features(store)}
