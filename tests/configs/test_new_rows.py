"""Rows that run now: W-Softmax's hinge rows and the stop-gradient ablation of Fig. 5, GSL's
adversarial DropOut rows, LFW tables; each builds its loss and its smoke form runs the feature."""

import jax
import jax.numpy as jnp
import numpy as np

from configs.gsl import table2 as gsl_table2
from configs.gsl import table4 as gsl_table4
from configs.wsoftmax import fig5, table1, table2
from dmlax import losses
from dmlax.train import objectives
from experiments import tables


def test_hinge_rows_train_the_multiclass_hinge_loss():
  for module, cols in ((table1, ("mnist",)), (table2, ("cifar10", "cifar100"))):
    for col in cols:
      c = module.get_config(f"row=hinge,col={col}")
      assert c.loss.name == "multiclass_hinge" and c.loss.softmax_epochs == 0.0
  # The registered objective is the pure loss on x W.
  c = table1.get_config("row=hinge,smoke")
  obj = objectives.build_objective(c, num_classes=5, steps_per_epoch=1)
  x = jax.random.normal(jax.random.key(0), (6, 4))
  y = jnp.array([0, 1, 2, 3, 4, 0])
  params = obj.init(jax.random.key(1), x)
  (w,) = jax.tree.leaves(params)
  loss, _ = obj.apply(x, y, params, step=jnp.asarray(0), rng=jax.random.key(2))
  z = np.asarray(x, np.float64) @ np.asarray(w, np.float64)
  wrong = np.where(np.eye(5, dtype=bool)[np.asarray(y)], -np.inf, z)
  want = np.mean(np.maximum(0.0, 1.0 + wrong.max(1) - z[np.arange(6), np.asarray(y)]))
  np.testing.assert_allclose(float(loss), want, rtol=1e-5)
  np.testing.assert_allclose(float(loss), float(losses.multiclass_hinge_loss(x, y, w)), rtol=1e-6)


def test_fig5_ablation_rows_are_marked_and_stop_the_gradient():
  ablations = [r for r in fig5.TABLE.rows if r.startswith("ablation_")]
  assert len(ablations) == 3
  for row in ablations:
    c = fig5.get_config(f"row={row}")
    assert c.loss.name == "weights_biased_softmax" and c.loss.kwargs.stop_gradient_biased
  for row in fig5.TABLE.rows:
    if not row.startswith("ablation_"):
      assert not fig5.get_config(f"row={row}").loss.kwargs.get("stop_gradient_biased", False)
  assert not any(row.startswith("ablation_") for row, _ in fig5.TABLE.reported)


def test_gsl_adversarial_dropout_rows_set_the_rate():
  for module in (gsl_table2, gsl_table4):
    for col in module.TABLE.cols:
      c = module.get_config(f"row=adv_dropout,col={col}")
      assert c.loss.adversarial_dropout == 0.005 and c.loss.name == "softmax"
    assert not module.TABLE.unavailable


def test_every_cell_of_every_table_is_runnable():
  for name in tables.all_tables():
    t = tables.load_table(name)
    assert not [cell for cell in t.cells() if t.why_unavailable(*cell)], name
