"""EfficientNet-Lite1 and Lite2: registered like Lite0, packaged ImageNet weights, 1280-d."""

from __future__ import annotations

import numpy as np
import pytest

from search_lab.features import create
from search_lab.features.backbones import BACKBONES
from tests.conftest import compose_config


@pytest.mark.parametrize(
    ("backbone", "native"), [("efficientnet_lite1", 240), ("efficientnet_lite2", 260)]
)
def test_lite_backbone_loads_its_packaged_weights(backbone: str, native: int) -> None:
    assert BACKBONES[backbone].layers == {"head": 1280}
    cfg = compose_config(["feature=cnn", f"feature.backbone={backbone}", f"feature.size={native}"])
    params = {k: v for k, v in cfg["feature"].items() if k != "name"}
    extractor = create("cnn", **{**params, "threads": 1})
    extractor.prepare()  # a weights file that does not fit the network raises ConfigError
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (180, 240, 3), dtype=np.uint8)
    vectors = extractor.extract_batch([image, image[:, ::-1]])
    assert vectors.shape == (2, 1280)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    lite0 = create("cnn", size=native, threads=1).extract_batch([image])
    assert not np.allclose(vectors[0], lite0[0], atol=1e-3)  # another network, other weights
