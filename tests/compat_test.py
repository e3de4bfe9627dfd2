"""Canaries for `keras_lit/compat.py`: each FAILS once Keras is fixed.

Every workaround in compat.py exists because Keras 3.15 behaves as asserted
here. When a canary fails, Keras no longer behaves that way: delete the
workaround (and the canary), then run the tests that check the behaviour
keras_lit needs (named in each canary). The two MultiWorkerMirroredStrategy
canaries (keras-team/keras#20585, #20329) run in
`multi_worker_test.py::test_keras_still_needs_the_multi_worker_workaround`.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import make_resnet_backbone

from keras_lit import compat
from keras_lit.distribute import get_strategy


def two_replicas():
    devices = [d.name for d in tf.config.list_logical_devices("CPU")[:2]]
    return get_strategy("mirrored", devices=devices)


def test_keras_still_skips_an_unchanged_trainable_flag():
    """`compat.set_trainable`; fix checked by
    `locked_image_encoder_test.py::test_lock_survives_deserialisation`."""
    config = keras.layers.serialize(make_resnet_backbone())
    config["config"]["trainable"] = False
    backbone = keras.layers.deserialize(config)
    backbone.trainable = False
    assert any(layer.trainable for layer in backbone.layers), (
        "Keras now freezes the sublayers of a model deserialised with "
        "trainable=False: compat.set_trainable is no longer needed."
    )
    compat.set_trainable(backbone, False)
    assert not any(layer.trainable for layer in backbone.layers)


def test_keras_still_builds_the_optimizer_inside_xla():
    """`compat.TrainerWorkarounds` builds the optimizer before the trace;
    fix checked by `lit_model_test.py::test_xla_step_matches_non_xla`."""

    class Tiny(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = keras.layers.Dense(1)
            self.dense.build((None, 2))
            self.built = True

        def call(self, x):
            return self.dense(x)

        def train_step(self, data):
            x, y = data
            with tf.GradientTape() as tape:
                loss = tf.reduce_mean((self(x) - y) ** 2)
            variables = self.trainable_variables
            gradients = tape.gradient(loss, variables)
            # As in LiTModel.train_step: updates wait for the data.
            with tf.control_dependencies([loss]):
                self.optimizer.apply(gradients, variables)
            return {"loss": loss}

    model = Tiny()
    model.compile(optimizer="adam", jit_compile=True)
    data = np.ones((2, 2), "float32"), np.ones((2, 1), "float32")
    with pytest.raises(Exception, match="failed to lift variable creations"):
        model.fit(*data, batch_size=2, verbose=0)


@pytest.fixture(scope="module")
def strategy():
    return two_replicas()


def test_keras_still_clips_indexed_slices_by_the_wrong_norm():
    """`compat.clip_global_gradients` densifies; fix checked by
    `distribute_test.py::test_sgd_updates_match_one_device`."""
    variable = keras.Variable(np.zeros((3, 2), "float32"))
    optimizer = keras.optimizers.SGD(learning_rate=1.0, global_clipnorm=1.0)
    optimizer.build([variable])
    # Row 0 twice: the dense gradient is [7, 0], of norm 7.
    gradient = tf.IndexedSlices(
        tf.constant([[3.0, 0.0], [4.0, 0.0]]), tf.constant([0, 0]), [3, 2]
    )
    optimizer.apply([gradient], [variable])
    # Keras takes the norm as sqrt(3^2 + 4^2) = 5: the step is 7/5, not 1.
    np.testing.assert_allclose(variable.numpy()[0], [-1.4, 0.0], rtol=1e-6)


def test_keras_still_clips_before_summing_replicas(strategy):
    """`compat.clip_global_gradients` sums first; fix checked by
    `distribute_test.py::test_sgd_updates_match_one_device`."""
    with strategy.scope():
        variable = keras.Variable(np.zeros(2, "float32"))
        optimizer = keras.optimizers.SGD(learning_rate=1.0, global_clipnorm=1.0)
        optimizer.build([variable])

    @tf.function
    def step():
        gradient = tf.constant([1.0, 0.0])
        strategy.run(lambda: optimizer.apply([gradient], [variable]))

    step()
    # Each replica's [1, 0] is within the clip; their sum [2, 0] is not.
    np.testing.assert_allclose(variable.numpy(), [-2.0, 0.0])


def test_keras_still_checks_one_replica_for_overflow(strategy):
    """`compat.clip_global_gradients` all-reduces loss-scaled gradients;
    fix checked by `distribute_test.py::test_loss_scaling_matches_one_device_
    and_sees_every_replica`."""
    with strategy.scope():
        variable = keras.Variable(np.zeros(2, "float32"))
        optimizer = keras.optimizers.LossScaleOptimizer(
            keras.optimizers.SGD(learning_rate=1.0), initial_scale=2.0
        )
        optimizer.build([variable])

    def per_replica(context):
        if context.replica_id_in_sync_group == 0:
            return tf.constant([1.0, 1.0])
        return tf.constant([np.inf, 1.0])

    gradients = strategy.experimental_distribute_values_from_function(
        per_replica
    )

    @tf.function
    def step(gradient):
        strategy.run(
            lambda g: optimizer.apply([g], [variable]), args=(gradient,)
        )

    step(gradients)
    # Replica 1's overflow reached the variable; the step was not skipped.
    assert not np.all(np.isfinite(variable.numpy()))


def batch_norm_op_types(layer, training, shape=(2, 4, 4, 3)):
    """Op types of one traced call of `layer`."""
    function = tf.function(lambda x: layer(x, training=training))
    graph = function.get_concrete_function(tf.TensorSpec(shape)).graph
    return {op.type for op in graph.get_operations()}


def test_keras_batch_norm_still_trains_unfused():
    """`compat.fuse_batch_normalization`; fix checked by
    `fused_batch_norm_test.py`."""
    layer = keras.layers.BatchNormalization()
    layer.build((None, 4, 4, 3))
    op_types = batch_norm_op_types(layer, training=True)
    assert "Mean" in op_types
    assert not any("FusedBatchNorm" in kind for kind in op_types), (
        "Keras' BatchNormalization now trains with TF's fused kernel: "
        "compat.fuse_batch_normalization is no longer needed."
    )
