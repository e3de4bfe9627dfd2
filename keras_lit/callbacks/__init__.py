"""Keras callbacks: evaluation during `fit`, exact backup and resume."""

from keras_lit.callbacks.evaluation_callback import EvaluationCallback
from keras_lit.callbacks.retrieval_evaluation import RetrievalEvaluation
from keras_lit.callbacks.step_backup import StepBackupAndRestore
from keras_lit.callbacks.zero_shot_evaluation import ZeroShotEvaluation
