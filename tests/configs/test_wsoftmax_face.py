"""W-Softmax's LFW tables: the face recipe against section 5.5, its data and networks exist."""

from configs import common
from tests.configs import fields
from configs.wsoftmax import table3, table4
from dmlax import models
from dmlax.data import registry
from dmlax.data import transforms


def test_face_recipe_follows_section_5_5():
  for module, net in ((table3, "liu_lfw17"), (table4, "sphereface64")):
    c = module.TABLE.base()
    assert c.model.name == net and c.model.kwargs.embedding_dim == 512
    assert c.dataset.name == "casia_webface" and c.dataset.image_size == 160
    assert c.batch_size == 128 and c.optimizer.lr == 0.1 and c.num_train_steps == 30000
    # lr / 10 every 10k iterations: the boundaries in epochs land on steps 10k and 20k.
    steps = [round(b * c.steps_per_epoch) for b in c.schedule.boundaries]
    assert steps == [10000, 20000] and c.schedule.factor == 0.1
    entry, _, task = registry.lookup(c.dataset.name, c.dataset.task)
    assert entry.manual and task.num_classes == 10575
    transforms.check_augment(c.dataset.augment)
    models.get_model(c.model.name, **c.model.kwargs.to_dict())
    assert c.eval.verification_dataset == "lfw"
    registry.lookup(c.eval.verification_dataset)


def test_every_face_recipe_field_is_a_trainer_field_or_pending():
  base = common.get_config().to_dict()
  for module in (table3, table4):
    for row in module.TABLE.rows:
      c = module.get_config(f"row={row}")  # runnable: no `unavailable` cell left
      assert set(fields.unknown_fields(c)) == set(table3.TRAINER_PENDING), row
      assert c.eval.verification_dataset == "lfw"
  for dotted in table3.TRAINER_PENDING:
    group, leaf = dotted.split(".")
    assert leaf not in base[group], f"{dotted} is a trainer field now; update TRAINER_PENDING"
