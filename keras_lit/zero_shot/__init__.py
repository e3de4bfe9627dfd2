"""Zero-shot classification and image-text retrieval for LiT models."""

from keras_lit.zero_shot.evaluation import classification_metrics
from keras_lit.zero_shot.evaluation import classification_ranks
from keras_lit.zero_shot.evaluation import evaluate_retrieval
from keras_lit.zero_shot.evaluation import evaluate_zero_shot
from keras_lit.zero_shot.evaluation import retrieval_metrics
from keras_lit.zero_shot.evaluation import retrieval_ranks
from keras_lit.zero_shot.prompts import DEFAULT_PROMPT_SET
from keras_lit.zero_shot.prompts import PROMPT_SETS
from keras_lit.zero_shot.prompts import imagenet_class_names
from keras_lit.zero_shot.prompts import prompt_templates
from keras_lit.zero_shot.tfds import evaluate_zero_shot_tfds
from keras_lit.zero_shot.tfds import load_tfds_classification
from keras_lit.zero_shot.weights import average_prompt_embeddings
from keras_lit.zero_shot.weights import build_zero_shot_weights
from keras_lit.zero_shot.weights import canonicalize_text
from keras_lit.zero_shot.weights import canonicalize_text_tf
from keras_lit.zero_shot.weights import format_prompts
from keras_lit.zero_shot.weights import l2_normalize
from keras_lit.zero_shot.weights import validate_class_names
from keras_lit.zero_shot.weights import validate_templates
from keras_lit.zero_shot.zero_shot_classifier import ZeroShotClassifier
