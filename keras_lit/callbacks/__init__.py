"""Keras callbacks that evaluate a LiT model during `fit`."""

from keras_lit.callbacks.evaluation_callback import EvaluationCallback
from keras_lit.callbacks.retrieval_evaluation import RetrievalEvaluation
from keras_lit.callbacks.zero_shot_evaluation import ZeroShotEvaluation
