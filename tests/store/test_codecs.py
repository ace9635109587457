import json
import subprocess
import sys

import numpy as np
import pytest
import zarr

from robolearn.store import Feature, Store, StoreError, StoreWriter, features_from_space


def natural_frames(n: int, h: int = 96, w: int = 128, seed: int = 0) -> np.ndarray:
    """A moving scene: smooth shading, a few objects with soft edges, static texture and sensor noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:h, :w].astype(np.float32)
    texture = rng.normal(0, 6, (h // 4, w // 4)).repeat(4, 0).repeat(4, 1)
    out = np.empty((n, h, w, 3), np.uint8)
    for i in range(n):
        base = 90 + 50 * np.sin(xx / 23 + i / 9) * np.cos(yy / 31) + texture
        blob = 80 * np.exp(-(((xx - 20 - 3 * i) / 12) ** 2 + ((yy - h / 2) / 10) ** 2))
        rgb = np.stack([base + blob, base * 0.8 + 20, base * 0.6 + blob * 0.5], -1)
        out[i] = np.clip(rgb + rng.normal(0, 2, rgb.shape), 0, 255).astype(np.uint8)
    return out


def _write(path, codec, frames, quality=90, layout="sharded"):
    feats = {"images/front": Feature(frames.shape[1:], "uint8", codec, quality), "action": Feature((2,), "float32")}
    with StoreWriter(path, feats, fps=10, frame_layout=layout) as w:
        w.add_episode({"images/front": frames, "action": np.zeros((len(frames), 2), np.float32)})
    return path


def test_jpeg_roundtrip_error_and_size(tmp_path):
    frames = natural_frames(12)
    jpeg = Store.open(_write(tmp_path / "j.zarr", "jpeg", frames))
    got = jpeg.episode(0)["images/front"]
    assert got.shape == frames.shape and got.dtype == np.uint8
    err = np.abs(got.astype(np.int16) - frames)
    mse = float((err.astype(np.float64) ** 2).mean())
    assert err.mean() < 3.0 and 10 * np.log10(255**2 / mse) > 33.0  # quality 90: PSNR well above 33 dB
    assert np.percentile(err, 99) <= 12
    zstd = Store.open(_write(tmp_path / "z.zarr", "zstd", frames))
    np.testing.assert_array_equal(zstd.episode(0)["images/front"], frames)  # lossless stays lossless
    assert jpeg.root["data/images/front"].nbytes_stored() < 0.5 * zstd.root["data/images/front"].nbytes_stored()
    # quality is stored in the array metadata and in the feature
    meta = json.loads((tmp_path / "j.zarr" / "data" / "images" / "front" / "zarr.json").read_text())
    [shard] = meta["codecs"]  # sharded: JPEG is the codec of each frame, the inner chunk of a shard
    assert shard["name"] == "sharding_indexed" and shard["configuration"]["chunk_shape"] == [1, 96, 128, 3]
    assert shard["configuration"]["codecs"] == [{"name": "robolearn.jpeg", "configuration": {"quality": 90}}]
    assert jpeg.features["images/front"].quality == 90 and jpeg.features["images/front"].codec == "jpeg"


def test_lower_quality_is_smaller(tmp_path):
    frames = natural_frames(4)
    q90 = Store.open(_write(tmp_path / "a.zarr", "jpeg", frames, 90)).root["data/images/front"].nbytes_stored()
    q50 = Store.open(_write(tmp_path / "b.zarr", "jpeg", frames, 50)).root["data/images/front"].nbytes_stored()
    assert q50 < q90


@pytest.mark.parametrize("feature, msg", [
    (Feature((8, 8), "uint16", "jpeg"), "needs uint8 \\(H, W, 3\\)"),
    (Feature((8, 8, 3), "uint16", "jpeg"), "needs uint8"),
    (Feature((8, 8, 4), "uint8", "jpeg"), "needs uint8"),
    (Feature((8, 8, 3), "uint8", "jpeg", quality=0), "quality must be in 1..100"),
    (Feature((8, 8, 3), "uint8", "png"), "unknown codec 'png'"),
])
def test_jpeg_refused_where_lossless_is_required(tmp_path, feature, msg):
    key = "depth/front" if len(feature.shape) == 2 else "images/front"
    with pytest.raises(StoreError, match=msg):
        StoreWriter(tmp_path / "x.zarr", {key: feature, "action": Feature((2,), "float32")}, fps=10)
    assert not (tmp_path / "x.zarr" / "zarr.json").exists()


def test_features_from_space_image_codec():
    gym = pytest.importorskip("gymnasium")
    obs = gym.spaces.Dict({"images/front": gym.spaces.Box(0, 255, (8, 8, 3), np.uint8),
                           "depth/front": gym.spaces.Box(0, 65535, (8, 8), np.uint16),
                           "state": gym.spaces.Box(-1, 1, (3,), np.float32)})
    feats = features_from_space(obs, gym.spaces.Box(-1, 1, (2,), np.float32), image_codec="jpeg", image_quality=80)
    assert (feats["images/front"].codec, feats["images/front"].quality) == ("jpeg", 80)
    assert feats["depth/front"].codec == "zstd" and feats["state"].codec == "zstd"
    with pytest.raises(StoreError, match="unknown image codec 'webp'"):
        features_from_space(obs, gym.spaces.Box(-1, 1, (2,), np.float32), image_codec="webp")


def test_jpeg_store_readable_by_a_fresh_process(tmp_path):
    frames = natural_frames(3)
    path = _write(tmp_path / "j.zarr", "jpeg", frames)
    expected = Store.open(path).episode(0)["images/front"]
    np.save(tmp_path / "expected.npy", expected)
    code = ("import sys, numpy as np; from robolearn.store import Store; "
            "got = Store.open(sys.argv[1]).episode(0)['images/front']; "
            "assert np.array_equal(got, np.load(sys.argv[2])), 'mismatch'; print('ok', got.shape)")
    out = subprocess.run([sys.executable, "-c", code, str(path), str(tmp_path / "expected.npy")],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "ok (3, 96, 128, 3)" in out.stdout


def test_corrupt_jpeg_chunk_names_episode_and_key(tmp_path):
    path = _write(tmp_path / "j.zarr", "jpeg", natural_frames(3), layout="files")  # one file per frame
    chunk = path / "data" / "images" / "front" / "c" / "1" / "0" / "0" / "0"
    chunk.write_bytes(chunk.read_bytes()[:40])  # truncated
    with pytest.raises(StoreError, match=r"episode 0, key 'images/front'"):
        Store.open(path).episode(0)
    assert zarr.open_array(str(path / "data" / "images" / "front"))[0].shape == (96, 128, 3)
