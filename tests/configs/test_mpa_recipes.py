"""MPA's built configs against the paper's section 4.2 and ProxyAnchor's reference code.

Reference values are written here: MPA section 4.2 (batch, epochs, K, rates, decay) and
tjddus9597/Proxy-Anchor-CVPR2020 `code/train.py` and README (warm-up 1, clip value 10,
embedding at the backbone rate, AdamW weight decay 1e-4, bn freeze 1, alpha 32, margin 0.1).
"""

import pytest

from configs import common
from tests.configs import fields
from configs.mpa import recipes
from configs.mpa import table4, table5, table6

# dataset: (batch, epochs, K), MPA 4.2.
PAPER = {"cub200": (180, 60, 10), "cars196": (64, 60, 10), "sop": (32, 100, 2)}
PROXY_ANCHOR = dict(warm=1, clip_value=10.0, embedding_lr_factor=1, proxy_lr_factor=100,
                    weight_decay=1e-4, bn_freeze=True, alpha=32.0, mrg=0.1)


@pytest.mark.parametrize("module,dataset", [(table4, "cub200"), (table5, "cars196"),
                                            (table6, "sop")])
def test_tables_4_to_6_follow_the_paper_and_proxy_anchor(module, dataset):
  batch, epochs, k = PAPER[dataset]
  for row in module.TABLE.rows:
    c = module.get_config(f"row={row}")
    assert c.dataset.name == dataset and c.batch_size == batch and c.num_epochs == epochs
    assert c.loss.num_proxies == (1 if row == "proxy_anchor" else k)
    assert c.optimizer.name == "adamw" and c.optimizer.lr == 1e-4
    assert c.optimizer.head_lr == 1e-2  # proxies: MPA 1e-2 = ProxyAnchor's lr * 100
    assert c.optimizer.head_lr == c.optimizer.lr * PROXY_ANCHOR["proxy_lr_factor"]
    assert c.optimizer.new_layers_lr == c.optimizer.lr * PROXY_ANCHOR["embedding_lr_factor"]
    assert c.optimizer.warmup_epochs == PROXY_ANCHOR["warm"] and c.optimizer.new_layers == "head"
    assert c.optimizer.grad_clip_value == PROXY_ANCHOR["clip_value"]
    assert c.optimizer.weight_decay == PROXY_ANCHOR["weight_decay"]
    assert c.model.frozen_bn == PROXY_ANCHOR["bn_freeze"]
    assert c.schedule.name == "exponential" and c.schedule.decay_rate == 0.5
    assert c.schedule.decay_epochs == 20 and c.schedule.staircase
    assert c.dataset.augment == "bninception_square" and c.dataset.image_size == 224
    assert c.model.kwargs.to_dict() == {"pooling": "gem", "gem_p": 3.0, "embedding_dim": 512}
    if row != "soft_triple":
      assert c.loss.kwargs.alpha == PROXY_ANCHOR["alpha"]
      assert c.loss.kwargs.margin == PROXY_ANCHOR["mrg"]
  assert module.TABLE.default_row == "mpa" and len(module.TABLE.reported) == 5


def test_one_factory_builds_tables_4_to_6():
  for module, dataset in ((table4, "cub200"), (table5, "cars196"), (table6, "sop")):
    again = recipes.comparison_table(module.TABLE.name, dataset, {})
    for row in module.TABLE.rows:
      assert again.config(f"row={row}").to_dict() == module.get_config(f"row={row}").to_dict()


def test_every_recipe_field_is_a_trainer_field_or_pending():
  base = common.get_config().to_dict()
  for dataset in recipes.DATASETS:
    c = recipes.retrieval(dataset)
    assert set(fields.unknown_fields(c)) == set(recipes.TRAINER_PENDING), dataset
    assert c.optimizer.grad_clip_value == 10.0 and c.optimizer.new_layers_lr == 1e-4
  for dotted in recipes.TRAINER_PENDING:
    group, leaf = dotted.split(".")
    assert leaf not in base[group], f"{dotted} is a trainer field now; update TRAINER_PENDING"
