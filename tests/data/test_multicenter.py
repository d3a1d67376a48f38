"""The generated `multicenter` data: deterministic, and every class a union of distinct modes."""
import numpy as np

from dmlax.data.builders import multicenter


def test_render_is_deterministic_and_seeded():
  cfg = multicenter.MulticenterConfig(name="t", num_classes=4, images_per_mode=3)
  a, la, ma = multicenter.render_multicenter(cfg)
  b, _, _ = multicenter.render_multicenter(cfg)
  np.testing.assert_array_equal(a, b)
  other = multicenter.MulticenterConfig(name="u", num_classes=4, images_per_mode=3, seed=1)
  assert not np.array_equal(a, multicenter.render_multicenter(other)[0])
  assert a.shape == (4 * 3 * 3, 32, 32, 3) and a.dtype == np.uint8
  np.testing.assert_array_equal(np.bincount(la), [9] * 4)
  np.testing.assert_array_equal(np.bincount(ma), [12] * 3)


def test_modes_of_a_class_are_far_apart():
  cfg = multicenter.MulticenterConfig(name="t")
  images, labels, modes = multicenter.render_multicenter(cfg)
  # Colour statistics (10th/50th/90th percentile per channel): shifts of the shape move
  # pixels, not colours, so a mode is one tight cluster here.
  x = np.concatenate([np.percentile(images.reshape(len(images), -1, 3), q, axis=1)
                      for q in (10, 50, 90)], axis=1)
  protos = multicenter.multicenter_prototypes(cfg)
  for c in range(cfg.num_classes):
    # Within a class the modes share no shape and no colour.
    assert len(set(protos[c, :, 0])) == cfg.modes
    assert len(set(protos[c, :, 1:].ravel())) == 2 * cfg.modes
    means = np.stack([x[(labels == c) & (modes == k)].mean(0) for k in range(cfg.modes)])
    spread = np.mean([np.linalg.norm(x[(labels == c) & (modes == k)] - means[k], axis=1).mean()
                      for k in range(cfg.modes)])
    between = min(np.linalg.norm(means[i] - means[j])
                  for i in range(cfg.modes) for j in range(i + 1, cfg.modes))
    assert between > 3 * spread  # Several clusters per class, not one.
  # No two (class, mode) cells share a prototype.
  assert len({tuple(p) for p in protos.reshape(-1, 3)}) == cfg.num_classes * cfg.modes
