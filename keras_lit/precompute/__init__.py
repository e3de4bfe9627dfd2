"""Precomputed image embeddings: run the locked image tower once, not per step.

LiT's image tower is locked, so its embeddings of a training image never
change. `precompute_image_embeddings` runs the tower over a dataset once and
writes the pre-logits (`LockedImageEncoder.extract_features`, before any
optional image head) with every caption to sharded TFRecords;
`load_precomputed` reads them back as `{"image_embeddings", "texts"}` and
`LiTModel.fit` then trains the text tower without ever running the image
backbone (the paper's App. G: about 140x the throughput for a g/14 tower).

The output directory holds `embeddings-00000.tfrecord`, ... and a
`manifest.json` listing the settings and every finished shard with its
size and SHA-256. Shards are written to a temporary file and renamed, then
the manifest is rewritten the same way, so a crash at any point loses at
most the shard in progress: rerunning the same call skips the finished
shards and writes the rest, byte for byte as an uninterrupted run would.

Modules: `writer` (precompute_image_embeddings), `reader`
(load_precomputed), `manifest` (the manifest and shard files), `tower` (the
locked tower: checked, identified, run), `inputs` (argument and dataset
checks) and `command` (the command line).

Typical usage:

    python -m keras_lit.precompute --model lit.keras \
        --tfrecords "pairs/train-*.tfrecord" embeddings/
"""

from keras_lit.precompute.command import build_parser
from keras_lit.precompute.command import main
from keras_lit.precompute.command import run
from keras_lit.precompute.inputs import RANDOM_OP_MARKERS
from keras_lit.precompute.inputs import find_random_ops
from keras_lit.precompute.manifest import FORMAT
from keras_lit.precompute.manifest import FORMAT_VERSION
from keras_lit.precompute.manifest import MANIFEST
from keras_lit.precompute.manifest import read_manifest
from keras_lit.precompute.reader import CAPTION_MODES
from keras_lit.precompute.reader import PARSE_CHUNK
from keras_lit.precompute.reader import load_precomputed
from keras_lit.precompute.tower import encoder_fingerprint
from keras_lit.precompute.writer import DTYPES
from keras_lit.precompute.writer import precompute_image_embeddings
