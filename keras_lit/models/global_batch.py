"""One loss over the global batch, whatever the number of replicas.

Under a strategy, each replica scores its `b` local rows against the
all-gathered `G` rows of the other modality, with labels offset by the rows
of the replicas before it: memory per replica is `b x G`, never `G x G`.
The all-gather sends each replica the gradients of its own rows from every
replica (a SUM), and the optimizer sums the replicas' gradients. Scaling the
local mean loss by `b / G` (`1 / replicas` for even batches) therefore makes
the summed update the gradient of the global mean loss, as one device would
compute it, also for an uneven last batch. The metrics are summed over
replicas, so every replica reports the global values.
"""

import functools

import tensorflow as tf
from keras import ops

from keras_lit.distribute import is_multi_worker
from keras_lit.distribute import per_replica_batch_size
from keras_lit.distribute import replica_context
from keras_lit.losses import LossTerms
from keras_lit.models.lit_metrics import batch_stats


def global_batch_loss(loss, image_embeddings, text_embeddings, head):
    """This replica's share of the global-batch loss, and its statistics.

    Args:
        loss: a loss object with `batch_loss` (`ContrastiveLoss`).
        image_embeddings, text_embeddings: `[b, D]` L2-normalised local
            embeddings.
        head: the `ContrastiveHead` whose parameters the loss uses.

    Returns:
        `(objective, replicas, stats)`: the scaled loss to differentiate,
        the number of replicas in sync and the global
        `keras_lit.models.lit_metrics.batch_stats`.
    """
    context = replica_context()
    if context is None:
        terms = loss.batch_loss(image_embeddings, text_embeddings, head)
        return terms.loss, 1, batch_stats(terms, local=True)
    all_images = context.all_gather(image_embeddings, axis=0)
    all_texts = context.all_gather(text_embeddings, axis=0)
    terms = loss.batch_loss(
        image_embeddings,
        text_embeddings,
        head,
        all_image_embeddings=all_images,
        all_text_embeddings=all_texts,
        label_offset=row_offset(context, image_embeddings),
    )
    local_batch = ops.cast(ops.shape(image_embeddings)[0], "float32")
    global_batch = ops.cast(ops.shape(all_images)[0], "float32")
    # A replica can get no rows of a partial last batch (mean of nothing is
    # NaN); its share of the loss is then 0.
    share = ops.where(local_batch > 0, terms.loss, 0.0)
    stats = batch_stats(LossTerms(share, *terms[1:]))
    stats = context.all_reduce("SUM", tf.stop_gradient(stats))
    objective = share * (local_batch / global_batch)
    return objective, context.num_replicas_in_sync, stats


def row_offset(context, embeddings):
    """Row of the global batch where this replica's rows start."""
    replica_id = context.replica_id_in_sync_group
    local_batch = embeddings.shape[0]
    if local_batch is not None:
        # Static shapes (drop_remainder=True): every replica has `b` rows.
        return replica_id * local_batch
    # An uneven (partial) batch: add up the rows of the replicas before.
    sizes = context.all_gather(tf.shape(embeddings)[:1], axis=0)
    return tf.reduce_sum(sizes[:replica_id])


def check_global_batch(iterator, strategy):
    """Raises if a static global batch does not divide by replicas."""
    adapter = getattr(iterator, "data_adapter", None)
    if strategy.num_replicas_in_sync == 1 or adapter is None:
        return
    dataset = adapter.get_tf_dataset()
    if not isinstance(dataset, tf.data.Dataset):
        return
    specs = tf.nest.flatten(dataset.element_spec)
    batch = specs[0].shape[0] if specs and specs[0].shape.rank else None
    if batch is not None:
        per_replica_batch_size(int(batch), strategy)


def explain_worker_failures(function):
    """Re-raises a lost-peer collective error with what to do about it."""

    @functools.wraps(function)
    def wrapper(iterator):
        try:
            return function(iterator)
        except (
            tf.errors.UnavailableError,
            tf.errors.DeadlineExceededError,
        ) as error:
            cause = str(error).strip().splitlines()[0]
            raise type(error)(
                error.node_def,
                error.op,
                "Another worker of this multi-worker run failed or became "
                "unreachable, so this worker stopped training. Restart every "
                "worker with the same TF_CONFIG; with "
                "keras.callbacks.BackupAndRestore (one backup_dir per "
                "worker) training resumes from the last backup. Cause: "
                f"{cause}",
            ) from error

    return wrapper


class WorkerFailureMessages:
    """Mixin: a multi-worker step that loses a peer says what to do."""

    def make_train_function(self, force=False):
        make = super().make_train_function
        return self._explained("train_function", make, force)

    def make_test_function(self, force=False):
        make = super().make_test_function
        return self._explained("test_function", make, force)

    def _explained(self, name, make, force):
        if getattr(self, name) is not None and not force:
            return getattr(self, name)
        make(force=force)
        if is_multi_worker(self.distribute_strategy):
            setattr(self, name, explain_worker_failures(getattr(self, name)))
        return getattr(self, name)
