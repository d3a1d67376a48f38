"""Our tfds builders; importing this package registers them with tfds.

`digits` (scikit-learn's bundled digits), `glyphs` and `multicenter` (both generated) build
offline in seconds; `inshop`, `caltech256`, `casia_webface` and `lfw_verification` read manually
downloaded folders.
"""
from dmlax.data.builders.caltech256 import Caltech256
from dmlax.data.builders.casia_webface import CasiaWebface
from dmlax.data.builders.digits import Digits
from dmlax.data.builders.glyphs import Glyphs
from dmlax.data.builders.inshop import Inshop
from dmlax.data.builders.lfw_verification import LfwVerification
from dmlax.data.builders.multicenter import Multicenter
