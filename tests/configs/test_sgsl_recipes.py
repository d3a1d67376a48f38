"""SGSL's built configs, field by field, against the authors' dumped fastreid configs.

The reference values are copied here from luyang-NWPU/SGSL
`projects/FastRetri/logs/r50-base_{cub,cars,sop,inshop}/config.yaml` (the runs behind the
authors' logs); no config is built to produce them.
"""

import math

import numpy as np
import pytest

from configs import common
from tests.configs import fields
from configs.sgsl import recipes
from configs.sgsl import table1, table2, table4, table5
from dmlax.data import transforms

# dataset: (BASE_LR, MOMENTUM, NESTEROV, ETA_MIN_LR, CE.EPSILON, NUM_CLASSES, SIZE_TRAIN,
#           CJ (brightness, contrast, saturation, hue) or None when CJ.ENABLED is false, RATIO)
FASTREID = {
    "cub200": (0.05, 0.0, True, 0.0005, 0.4, 100, [256], (0.25, 0.25, 0.25, 0.0),
               (0.75, 1.33333)),
    "cars196": (0.05, 0.0, True, 0.0005, 0.4, 98, [256, 256], (0.3, 0.3, 0.3, 0.1), (1.0, 1.0)),
    "sop": (0.003, 0.99, True, 3.0e-05, 0.1, 11318, [256, 256], None, (0.75, 1.33333)),
    "inshop": (0.003, 0.99, True, 3.0e-05, 0.1, 3997, [0], None, (0.75, 1.33333)),
}
# Shared by the four files.
COMMON = dict(IMS_PER_BATCH=64, NUM_INSTANCE=4, MAX_EPOCH=100, WEIGHT_DECAY=0.0005,
              WARMUP_ITERS=1000, WARMUP_FACTOR=0.1, CROP_SIZE=224, SCALE=(0.16, 1.0),
              LAST_STRIDE=1, GEM_P=3.0, NEG_R=30.0)


def _config(dataset):
  if dataset == "inshop":
    return table2.get_config("col=inshop_2048")
  return table1.get_config(f"col={dataset}_2048")


@pytest.mark.parametrize("dataset", sorted(FASTREID))
def test_recipe_matches_the_authors_config(dataset):
  lr, momentum, nesterov, eta_min, eps, classes, size, jitter, ratio = FASTREID[dataset]
  c = _config(dataset)
  assert c.dataset.name == dataset and c.loss.name == "softmax_sgsl"
  assert c.optimizer.name == "sgd" and c.optimizer.lr == lr
  assert c.optimizer.momentum == momentum
  # fastreid solver/build.py passes nesterov=True only with a non-zero momentum.
  assert c.optimizer.nesterov == (nesterov and momentum > 0)
  assert math.isclose(c.optimizer.lr * c.schedule.final_fraction, eta_min, rel_tol=1e-12)
  assert c.schedule.name == "cosine"
  assert c.schedule.warmup_steps == COMMON["WARMUP_ITERS"]
  assert c.schedule.warmup_factor == COMMON["WARMUP_FACTOR"]
  assert c.optimizer.weight_decay == COMMON["WEIGHT_DECAY"]
  assert c.batch_size == COMMON["IMS_PER_BATCH"]
  assert c.dataset.sampler == "m_per_class" and c.dataset.m_per_class == COMMON["NUM_INSTANCE"]
  assert c.num_epochs == COMMON["MAX_EPOCH"] and c.half_precision
  assert c.dataset.image_size == COMMON["CROP_SIZE"]
  kw = c.model.kwargs
  assert c.model.name == "resnet50" and kw.last_stride == COMMON["LAST_STRIDE"]
  assert kw.pooling == "gem" and kw.gem_p == COMMON["GEM_P"] and kw.bn_neck
  assert kw.bn_neck_scale and kw.rbr and kw.rbr_variant == "fastreid"
  assert "embedding_dim" not in kw  # EMBEDDING_DIM: 0
  assert c.loss.kwargs.gamma == COMMON["NEG_R"] and c.loss.kwargs.beta == 1.0
  assert c.loss.kwargs.start_below == 3.0
  # The input pipeline the FastRetri trainer builds from INPUT.
  spec = transforms.FASTRETRI[c.dataset.augment]
  expect_resize = {1: size[0], 2: tuple(size)}[len(size)] if size[0] else None
  assert spec.resize == expect_resize and spec.jitter == jitter
  assert spec.scale == COMMON["SCALE"] and spec.ratio == ratio


@pytest.mark.parametrize("dataset", sorted(FASTREID))
def test_label_smoothing_gives_fastreids_targets(dataset):
  """fastreid: 1 - eps on the label, eps / (C - 1) elsewhere; dmlax: 1 - e + e / C and e / C."""
  _, _, _, _, eps, classes, *_ = FASTREID[dataset]
  e = _config(dataset).loss.kwargs.label_smoothing
  fastreid = np.full(classes, eps / (classes - 1))
  fastreid[0] = 1 - eps
  ours = np.full(classes, e / classes)
  ours[0] += 1 - e
  np.testing.assert_allclose(ours, fastreid, rtol=1e-12, atol=1e-15)


def test_512_embedding_is_the_authors_bias_free_layer():
  kw = table1.get_config("col=cub200_512").model.kwargs
  assert kw.embedding_dim == 512 and kw.embedding_bias is False


def test_paper_wording_option_and_softmax_rows():
  c = table4.get_config("row=softmax")
  assert c.loss.name == "softmax" and not c.model.kwargs.rbr
  assert set(c.loss.kwargs) == {"label_smoothing"}
  assert table4.get_config("row=softmax_rbr").model.kwargs.rbr
  for key, value in recipes.PAPER_WORDING.items():
    *_, leaf = key.split(".")
    assert leaf in c.model.kwargs and c.model.kwargs[leaf] != value


def test_table5_cells_are_the_table1_and_table2_runs():
  for row in ("softmax", "softmax_sgsl"):
    for dataset in ("cub200", "cars196", "sop"):
      assert (table5.get_config(f"row={row},col={dataset}").to_dict()
              == table1.get_config(f"row={row},col={dataset}_2048").to_dict())
    assert (table5.get_config(f"row={row},col=inshop").to_dict()
            == table2.get_config(f"row={row},col=inshop_2048").to_dict())


def test_authors_numbers_name_reported_cells():
  for module in (table1, table2):
    for cell, numbers in module.AUTHORS_RUN.items():
      assert cell in module.TABLE.reported and len(numbers) == len(module.TABLE.metrics)


def test_every_recipe_field_is_a_trainer_field_or_pending():
  # A field the recipe sets that configs/common.py lacks would be silently ignored by the
  # trainer: it must be listed in TRAINER_PENDING (today none is).
  base = common.get_config().to_dict()
  for dataset in recipes.AUTHORS:
    for make in (recipes.retrieval, recipes.sgsl):
      c = make(dataset)
      assert set(fields.unknown_fields(c)) == set(recipes.TRAINER_PENDING), dataset
  for dotted in recipes.TRAINER_PENDING:
    group, leaf = dotted.split(".")
    assert leaf not in base[group], f"{dotted} is a trainer field now; update TRAINER_PENDING"
  c = _config("cub200")
  assert c.model.frozen_bn and c.model.frozen_bn_scope == "backbone"
  assert (c.schedule.warmup_steps, c.schedule.warmup_factor) == (1000, 0.1)
