"""The ``cnn`` family (CNN attention modules, ``(B, C, H, W)`` in and out) as the rest of the library sees it:
its ops and layers take feature maps, they are never token mixers (no MQAR / Austen / ViT quality run builds
one, asking for one as a mixer says why), and ``attnzoo compare`` plans their speed rows."""

from __future__ import annotations

import pytest
import torch
from registry_cases import make_inputs, run

import attnzoo
from attnzoo.compare.jobs import QualitySettings, check_families, quality_jobs, speed_jobs
from attnzoo.compare.run import CompareOptions, gather_jobs
from attnzoo.models import mixer_factory, usable_mixers
from attnzoo.models.mixers import GRID_LAYOUT, SEQUENCE_LAYOUT, check_mixers
from attnzoo.registry import FEATURE_MAP, IMAGE, Layout
from attnzoo.tasks.mqar_eval import MQARTask
from attnzoo.testing import get_spec

CNN = [v.name for v in attnzoo.variants("cnn")]
TINY = QualitySettings(tasks=("mqar", "fashion-mnist"), mqar=MQARTask(vocab_size=64, train_examples=64,
                                                                         test_examples=16, d_model=16, batch_size=4),
                       mqar_lengths=((16, 2),), mqar_steps=3)


def test_the_feature_map_layout() -> None:
    assert FEATURE_MAP == Layout(2, channels_first=True) != IMAGE
    assert str(FEATURE_MAP) == "(B, C, H, W)" and FEATURE_MAP.rank == 4
    assert "cnn" in attnzoo.registry.FAMILIES and "efficient_channel_attention" in CNN
    for name in CNN:
        variant = attnzoo.get_variant(name)
        # a module with two inputs (SSMA), a saliency map (MEDUSA) or a pyramid (SDANet) has no one-tensor layer
        assert variant.layout == FEATURE_MAP and variant.layer_layout in (None, FEATURE_MAP), name
        assert not variant.causal and variant.size_options == {} and variant.fit_options is None, name


@pytest.mark.parametrize("name", CNN)
def test_cnn_modules_are_not_token_mixers(name: str) -> None:
    # a module without a one-tensor layer (SSMA, MEDUSA's head, SDANet's pyramid attention) has no layer to mix with
    why = "is a CNN attention module" if attnzoo.get_variant(name).layer is not None else "has no layer"
    for layouts in ((SEQUENCE_LAYOUT,), (GRID_LAYOUT,), (SEQUENCE_LAYOUT, GRID_LAYOUT)):
        for causal in (True, False):
            assert name not in usable_mixers(layouts, causal)
            with pytest.raises(ValueError, match=r"is a CNN attention module .*\(B, C, H, W\).*not a token mixer"
                               if why.startswith("is") else why):
                mixer_factory(name, 64, layouts=layouts, causal=causal)
    with pytest.raises(ValueError, match=why):
        check_mixers({name: {}}, 64, (GRID_LAYOUT,), causal=False)


def test_compare_plans_speed_rows_but_no_quality_rows_for_the_cnn_family() -> None:
    assert check_families(["cnn"]) == ["cnn"]
    mixers = {job.mixer for job in quality_jobs(["cnn"], TINY)}
    assert mixers == {"softmax"}  # only the dense baseline every quality table carries
    speed = speed_jobs(["cnn"], "quick", "cpu")
    assert {job.who for job in speed} == set(CNN) and {job.family for job in speed} == {"cnn"}


def test_compare_refuses_a_cnn_module_as_a_quality_mixer(tmp_path) -> None:  # noqa: ANN001
    options = CompareOptions(out=tmp_path, quality=TINY, mixers=("eca",), speed=False)
    with pytest.raises(ValueError, match=r"--mixers 'eca': a CNN attention module .*not a token mixer"):
        gather_jobs(options)


@pytest.mark.parametrize(("name", "impl"), [(v.name, impl) for v in attnzoo.variants("cnn")
                                            for impl in v.implementations])
def test_a_nan_pixel_stays_in_its_sample_and_clean_samples_are_unchanged(name: str, impl: str) -> None:
    """NaN follows the math across the batch: a NaN pixel in sample 0 poisons nothing of sample 1 (the ops mix no
    samples: normalisations use their running statistics), whose output equals the clean one exactly."""
    spec = get_spec(name)
    case = {**spec.cases[1], "batch": 2}
    inputs = make_inputs(spec, case)
    clean = run(spec, case, inputs, impl)
    x = inputs["x"].clone()
    x[0, 0, x.shape[2] // 2, x.shape[3] // 2] = float("nan")
    out = run(spec, case, {**inputs, "x": x}, impl)
    assert out[0].isnan().any()
    assert torch.equal(out[1], clean[1])
