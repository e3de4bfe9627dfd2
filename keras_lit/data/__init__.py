"""Image-text data at scale: readers, a TFRecord converter, skip counting.

Every reader returns a `tf.data.Dataset` of `{"images": uint8 [H, W, 3],
"texts": string}` (batched if asked), ready for `LiTModel.fit`, with a
`skipped_images` attribute that counts the bad images it skipped. The
readers share their options (batching, shuffling, seed, augmentation,
caption sampling, pixel limit, ...) as one `ReaderOptions`, passed as
`options=` or field by field as keyword arguments.
"""

from keras_lit.data.augment import inception_crop
from keras_lit.data.convert import convert_csv
from keras_lit.data.convert import convert_folder
from keras_lit.data.convert import write_tfrecords
from keras_lit.data.csv_reader import csv_dataset
from keras_lit.data.csv_reader import read_csv_pairs
from keras_lit.data.example_format import parse_example
from keras_lit.data.example_format import serialize_example
from keras_lit.data.folder_reader import folder_dataset
from keras_lit.data.folder_reader import read_folder_pairs
from keras_lit.data.image_files_reader import image_files_dataset
from keras_lit.data.reader_options import ReaderOptions
from keras_lit.data.skipped_images import SkippedImages
from keras_lit.data.tfds_reader import tfds_dataset
from keras_lit.data.tfrecord_reader import tfrecord_dataset
