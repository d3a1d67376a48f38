"""Dataset names -> tfds builders and evaluation protocols; `info` and `names`.

Every dataset of the four papers has a name here. A name has one or more *tasks* (protocol
variants: ImageNet subsets, Caltech-256/SUN397 trials, the two uses of `digits`); `task=None`
picks the dataset's default task. Each task names the tfds splits it reads and a function of
their raw labels (`dmlax.data.protocols`) that yields the protocol's splits.

| name | tfds builder | default task | protocol splits |
|---|---|---|---|
| cub200 | caltech_birds2011 | retrieval (classes 1-100 / 101-200) | train, test |
| cars196 | cars196 | retrieval (1-98 / 99-196) | train, test |
| sop | stanford_online_products | retrieval (Ebay_train / Ebay_test) | train, test |
| inshop | inshop (ours, manual) | retrieval | train, query, gallery, test |
| food101 | food101 | classification | train, test |
| imagenet2012 | imagenet2012 (manual) | full; classes{100,200,500}, per_class{100,200,500} | train, test |
| caltech256 | caltech256 (ours, manual) | trial0 (trial1, trial2): 60 per class train | train, test |
| sun397 | sun397/standard-part{1,2,3}-120k | trial0 (trial1, trial2): 50 / 50 | train, test |
| cifar10, cifar100, mnist, fashion_mnist | same | classification (cifar10, mnist also first5..first9) | train, test |
| lfw | lfw_verification (ours, manual) | verification (6,000 pairs) | test |
| casia_webface | casia_webface (ours, manual) | train (face identities; evaluated on lfw) | train |
| digits | digits (ours, embedded) | classification; retrieval (0-4 / 5-9); per_class10, per_class30 | train, test |
| multicenter | multicenter (ours, generated) | retrieval (0-9 / 10-19); classification | train, test |
| glyphs | glyphs (ours, generated) | retrieval (0-63 / 64-99); classification; per_class10; classes32 | train, test |

Example:
  >>> from dmlax import data
  >>> data.info("cub200").num_classes
  100
"""
import dataclasses
import functools
from collections.abc import Callable, Mapping

from dmlax.data import protocols

_SEED = 0  # The fixed seed of every seeded protocol (ImageNet subsets, Caltech-256 trials).


@dataclasses.dataclass(frozen=True)
class Task:
  """One protocol of a dataset.

  Attributes:
    protocol: "classification", "retrieval" or "verification".
    num_classes: classes of the training split (0 where there is none).
    make: raw labels of tfds splits -> {protocol split: `protocols.Selection`}.
    splits: the protocol split names `make` returns.
    train_split / eval_split / eval_query_split / eval_gallery_split: protocol split names.
    parts: the tfds splits whose labels `make` reads.
    config: the tfds builder config this task reads (SUN397 partitions), else None.
  """
  protocol: str
  num_classes: int
  make: Callable[[Mapping], dict]
  parts: tuple[str, ...] = ("train", "test")
  splits: tuple[str, ...] = ("train", "test")
  train_split: str | None = "train"
  eval_split: str = "test"
  eval_query_split: str | None = None
  eval_gallery_split: str | None = None
  config: str | None = None


@dataclasses.dataclass(frozen=True)
class Entry:
  """A registered dataset: its tfds builder, label feature, stored image shape and tasks."""
  tfds_name: str
  label_key: str
  image_shape: tuple
  tasks: Mapping[str, Task]
  default_task: str
  manual: str | None = None  # What to download by hand and where to put it.
  manual_files: tuple[str, ...] = ()  # What must exist in the manual dir before preparing.


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
  """What a trainer needs to know about a dataset/task before reading it.

  `image_shape` is (H, W, C) as stored; None for a side that varies between images (pass
  `image_size` to the pipeline then). `num_examples` maps protocol splits to their sizes when
  the data is prepared in `data_dir` (None otherwise).
  """
  name: str
  task: str
  num_classes: int
  image_shape: tuple
  protocol: str
  train_split: str | None
  eval_split: str
  eval_query_split: str | None
  eval_gallery_split: str | None
  splits: tuple[str, ...]
  tfds_name: str
  tfds_config: str | None
  num_examples: Mapping[str, int] | None = None


def _classification(train="train", test="test", num_classes=0) -> Task:
  make = functools.partial(protocols.identity, parts={"train": (train,), "test": (test,)})
  return Task("classification", num_classes, make, parts=(train, test))


def _class_split(num_train_classes: int, num_classes: int,
                 first_test_class: int | None = None) -> Task:
  """Train on classes [0, num_train_classes), retrieve among [first_test_class, num_classes)
  (by default the classes right after the training ones)."""
  first = num_train_classes if first_test_class is None else first_test_class
  make = functools.partial(
      protocols.class_split, parts=("train", "test"),
      splits={"train": (0, num_train_classes), "test": (first, num_classes)})
  return Task("retrieval", num_train_classes, make)


_INSHOP_MANUAL = (
    "DeepFashion In-shop Clothes Retrieval (https://mmlab.ie.cuhk.edu.hk/projects/DeepFashion/"
    "InShopRetrieval.html): put `img/` (unzipped img.zip, holding img/WOMEN/... and img/MEN/...)"
    " and `list_eval_partition.txt` (from Eval/) directly in MANUAL_DIR.")
_CALTECH256_MANUAL = (
    "Caltech-256 (https://data.caltech.edu/records/nyy15-4j048): extract 256_ObjectCategories.tar"
    " so that MANUAL_DIR/256_ObjectCategories/001.ak47/001_0001.jpg exists.")
_IMAGENET_MANUAL = (
    "ImageNet ILSVRC2012 (https://image-net.org/download, registration required): put "
    "ILSVRC2012_img_train.tar and ILSVRC2012_img_val.tar in MANUAL_DIR.")
_LFW_MANUAL = (
    "LFW (https://vis-www.cs.umass.edu/lfw/): extract lfw.tgz so that MANUAL_DIR/lfw/"
    "Aaron_Eckhart/Aaron_Eckhart_0001.jpg exists (or an aligned copy with the same layout, "
    "e.g. MTCNN-aligned 160x160 as the W-Softmax paper uses), and put pairs.txt (the 10 x 600 "
    "View 2 pairs) in MANUAL_DIR.")
# CASIA-WebFace (W-Softmax Tables 3-4): training identities only; the face tables evaluate on
# `lfw`. Its one split is also the task's eval split (no held-out images exist).
_CASIA_MANUAL = (
    "CASIA-WebFace (Yi et al. 2014, https://arxiv.org/abs/1411.7923; the release is obtained "
    "from its authors): put the images as MANUAL_DIR/CASIA-WebFace/<subject>/<image>.jpg, e.g. "
    "MANUAL_DIR/CASIA-WebFace/0000045/001.jpg (an MTCNN-aligned 160x160 copy with the same "
    "layout for the W-Softmax face tables).")
_CASIA = Entry("casia_webface", "label", (None, None, 3), {"train": Task(
    "classification", 10575, functools.partial(protocols.identity, parts={"train": ("train",)}),
    parts=("train",), splits=("train",), eval_split="train")}, "train", manual=_CASIA_MANUAL,
    manual_files=("CASIA-WebFace",))


def _first(num_classes: int) -> dict[str, Task]:
  """Tasks `first{k}`: classes [0, k) of train and test (W-Softmax Table 5), k = 5 .. C - 1."""
  return {f"first{k}": Task("classification", k, functools.partial(
      protocols.first_classes, num_classes=k)) for k in range(5, num_classes)}


_IMAGENET_TASKS = {"full": _classification(test="validation", num_classes=1000)}
for _c in (100, 200, 500):
  _IMAGENET_TASKS[f"classes{_c}"] = Task("classification", _c, functools.partial(
      protocols.random_classes, num_classes=_c, seed=_SEED), parts=("train", "validation"))
  _IMAGENET_TASKS[f"per_class{_c}"] = Task("classification", 1000, functools.partial(
      protocols.per_class_subset, per_class=_c, seed=_SEED), parts=("train", "validation"))

REGISTRY: dict[str, Entry] = {
    "cub200": Entry("caltech_birds2011", "label", (None, None, 3),
                    {"retrieval": _class_split(100, 200)}, "retrieval"),
    "cars196": Entry("cars196", "label", (None, None, 3),
                     {"retrieval": _class_split(98, 196)}, "retrieval"),
    "sop": Entry("stanford_online_products", "class_id", (None, None, 3),
                 {"retrieval": Task("retrieval", 11318, functools.partial(
                     protocols.identity, parts={"train": ("train",), "test": ("test",)}))},
                 "retrieval"),
    "inshop": Entry("inshop", "label", (None, None, 3), {"retrieval": Task(
        "retrieval", 3997, functools.partial(
            protocols.identity, shared=("query", "gallery", "test"),
            parts={"train": ("train",), "query": ("query",), "gallery": ("gallery",),
                   "test": ("query", "gallery")}),
        parts=("train", "query", "gallery"), splits=("train", "query", "gallery", "test"),
        eval_query_split="query",
        eval_gallery_split="gallery")}, "retrieval", manual=_INSHOP_MANUAL,
        manual_files=("img", "list_eval_partition.txt")),
    "food101": Entry("food101", "label", (None, None, 3),
                     {"classification": _classification(test="validation", num_classes=101)},
                     "classification"),
    "imagenet2012": Entry("imagenet2012", "label", (None, None, 3), _IMAGENET_TASKS, "full",
                          manual=_IMAGENET_MANUAL, manual_files=(
                              "ILSVRC2012_img_train.tar", "ILSVRC2012_img_val.tar")),
    "caltech256": Entry("caltech256", "label", (None, None, 3), {
        f"trial{t}": Task("classification", 256, functools.partial(
            protocols.per_class_trial, part="images", per_class=60, trial=t, seed=_SEED),
            parts=("images",))
        for t in range(3)}, "trial0", manual=_CALTECH256_MANUAL,
        manual_files=("256_ObjectCategories",)),
    "sun397": Entry("sun397", "label", (None, None, 3), {
        f"trial{t}": dataclasses.replace(_classification(num_classes=397),
                                         config=f"standard-part{t + 1}-120k")
        for t in range(3)}, "trial0"),
    "cifar10": Entry("cifar10", "label", (32, 32, 3),
                     {"classification": _classification(num_classes=10), **_first(10)},
                     "classification"),
    "cifar100": Entry("cifar100", "label", (32, 32, 3),
                      {"classification": _classification(num_classes=100)}, "classification"),
    "mnist": Entry("mnist", "label", (28, 28, 1),
                   {"classification": _classification(num_classes=10), **_first(10)},
                   "classification"),
    "fashion_mnist": Entry("fashion_mnist", "label", (28, 28, 1),
                           {"classification": _classification(num_classes=10)},
                           "classification"),
    "lfw": Entry("lfw_verification", "label", (None, None, 3), {"verification": Task(
        "verification", 0, functools.partial(protocols.identity, parts={"test": ("test",)}),
        parts=("test",), splits=("test",), train_split=None)}, "verification",
        manual=_LFW_MANUAL, manual_files=("lfw", "pairs.txt")),
    "casia_webface": _CASIA,
    "digits": Entry("digits", "label", (8, 8, 1), {
        "classification": _classification(num_classes=10),
        "retrieval": _class_split(5, 10),
        # Scarce training data (CPU analogue of GSL Table B.2b): N random training images a class.
        **{f"per_class{n}": Task("classification", 10, functools.partial(
            protocols.per_class_subset, per_class=n, seed=_SEED, test="test"))
           for n in (10, 30)}}, "classification"),
    "multicenter": Entry("multicenter", "label", (32, 32, 3), {
        "retrieval": _class_split(10, 20),
        "classification": _classification(num_classes=20)}, "retrieval"),
    # The default of the main job: held-out classes share shape, colour and texture values with
    # the training classes (dmlax/data/builders/glyphs.py).
    "glyphs": Entry("glyphs", "label", (32, 32, 3), {
        "retrieval": _class_split(64, 100),
        # Hyperparameters are chosen here, never on the test classes: the training classes
        # 0-63 split into 40 to train on and 24 to retrieve among.
        "validation": _class_split(40, 64),
        # The test classes 64-99 retrieved by a network trained on the validation split's 40
        # training classes: separates the number of training classes from the class sets.
        "train40": _class_split(40, 100, first_test_class=64),
        "classification": _classification(num_classes=100),
        # Scarce training data (GSL Table B.2b in small): 10 random training images a class.
        "per_class10": Task("classification", 100, functools.partial(
            protocols.per_class_subset, per_class=10, seed=_SEED, test="test")),
        # 32 classes, so that W-Softmax's M_min = C - 1 = 31 sits inside a small width sweep.
        "classes32": Task("classification", 32, functools.partial(
            protocols.first_classes, num_classes=32))}, "retrieval"),
}


def names() -> tuple[str, ...]:
  """The registered dataset names."""
  return tuple(REGISTRY)


def lookup(name: str, task: str | None = None) -> tuple[Entry, str, Task]:
  """(entry, task name, task) for `name`; ValueError naming the known names/tasks."""
  if name not in REGISTRY:
    raise ValueError(f"unknown dataset {name!r}; known: {', '.join(REGISTRY)}")
  entry = REGISTRY[name]
  task = entry.default_task if task is None else task
  if task not in entry.tasks:
    raise ValueError(f"dataset {name!r} has no task {task!r}; known: {', '.join(entry.tasks)}")
  return entry, task, entry.tasks[task]
