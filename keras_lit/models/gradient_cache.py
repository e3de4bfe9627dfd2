"""Gradient caching: a global batch larger than the text tower's memory.

The text tower keeps activations for every row it back-propagates through,
so its memory grows with the batch. Gradient caching (Gao et al. 2021,
"Scaling Deep Contrastive Learning Batch Size under Memory Limited Setup")
splits the batch into sub-batches of `sub_batch_size` rows:

1. embed every sub-batch without a tape (no stored activations);
2. compute the loss over the whole batch from those embeddings, and its
   gradient with respect to the embeddings (and to the loss's own
   parameters: temperature, bias, the image projection);
3. run each sub-batch again under a tape and back-propagate the cached
   embedding gradient through it, summing the tower's gradients.

By the chain rule the sum equals the gradient of one step on the whole
batch (exactly, up to float32 summation order, when the tower is
deterministic: dropout off). Peak memory is one sub-batch's activations
plus the `[B, D]` embeddings. Sub-batches run one at a time in a
`tf.while_loop`; with a static batch size every shape stays static.
"""

import tensorflow as tf

from keras_lit.losses.blockwise import check_positive_int
from keras_lit.models.global_batch import global_batch_loss

IMAGE_KEYS = ("images", "image_embeddings")


def check_sub_batch_size(sub_batch_size):
    """Raises a clear error unless `sub_batch_size` is a positive int."""
    return check_positive_int(
        sub_batch_size, "text_sub_batch", "rows per text tower pass"
    )


def step_gradients(model, x):
    """`(objective, replicas, stats, gradients)` of one `LiTModel` step.

    Runs the towers, this replica's share of the global-batch loss (see
    `keras_lit.models.global_batch`) and its gradients with respect to
    `model.trainable_variables`; with `model.text_sub_batch`, through
    `cached_step_gradients`.
    """
    image_features = None
    if model.image_encoder.locked:
        # Outside the tape: no backward pass, no stored activations.
        image_features = tf.stop_gradient(model.image_features(x))
    if model.text_sub_batch:
        return cached_step_gradients(model, x, image_features)
    with tf.GradientTape() as tape:
        image_embeddings, text_embeddings = model.embed(
            x, image_features, training=True
        )
        objective, replicas, stats = global_batch_loss(
            model.pair_loss, image_embeddings, text_embeddings, model.head
        )
        if model.losses:
            objective = objective + tf.add_n(model.losses) / replicas
        if hasattr(model.optimizer, "scale_loss"):
            objective = model.optimizer.scale_loss(objective)
    gradients = tape.gradient(objective, model.trainable_variables)
    return objective, replicas, stats, gradients


def cached_step_gradients(model, x, image_features):
    """`LiTModel.train_step`'s gradients with the text tower sub-batched.

    Args:
        model: a `LiTModel` with `text_sub_batch` set.
        x: the preprocessed batch.
        image_features: the locked image tower's features of `x`.

    Returns:
        `(objective, replicas, stats, gradients)`, gradients aligned with
        `model.trainable_variables`, as the plain step computes them.
    """
    if image_features is None:
        raise ValueError(
            "Gradient caching (`text_sub_batch`) sub-batches the text tower "
            "only: it needs a locked image tower. Received: "
            "image_encoder.locked=False"
        )
    if model.text_encoder.losses:
        raise ValueError(
            "Gradient caching does not support text tower regularisation "
            "losses. Received: text_encoder.losses="
            f"{model.text_encoder.losses}"
        )
    text_inputs = {k: v for k, v in x.items() if k not in IMAGE_KEYS}
    tower_variables = model.text_encoder.trainable_variables
    tower_ids = {id(v) for v in tower_variables}
    others = [v for v in model.trainable_variables if id(v) not in tower_ids]

    def objective_fn(text_embeddings):
        image_embeddings = model.image_encoder.project(image_features)
        objective, replicas, stats = global_batch_loss(
            model.pair_loss,
            model.head.normalize(image_embeddings),
            model.head.normalize(text_embeddings),
            model.head,
        )
        if hasattr(model.optimizer, "scale_loss"):
            objective = model.optimizer.scale_loss(objective)
        return objective, (replicas, stats)

    objective, (replicas, stats), tower_gradients, gradients = cached_gradients(
        lambda sub: model.text_encoder(sub, training=True),
        text_inputs,
        model.text_sub_batch,
        objective_fn,
        tower_variables,
        others,
    )
    by_id = dict(zip(map(id, tower_variables), tower_gradients))
    by_id.update(zip(map(id, others), gradients))
    gradients = [by_id[id(v)] for v in model.trainable_variables]
    return objective, replicas, stats, gradients


def cached_gradients(
    encode,
    inputs,
    sub_batch_size,
    objective_fn,
    tower_variables,
    variables,
    width=None,
):
    """The gradients of one whole-batch step, one sub-batch of tower at once.

    Args:
        encode: `encode(sub_inputs) -> [s, D]` embeddings: the tower's
            forward pass (training mode) on a sub-batch.
        inputs: dict of `[B, ...]` tower inputs.
        sub_batch_size: int. Rows per tower pass.
        objective_fn: `objective_fn(embeddings) -> (objective, aux)`: the
            loss to differentiate, from the `[B, D]` embeddings (it may
            gather across replicas), and anything else to return.
        tower_variables: the tower's trainable variables.
        variables: other variables `objective_fn` uses (temperature ...).
        width: optional int. The embedding width `D`, when the batch size
            is dynamic (the loop then loses the static shape).

    Returns:
        `(objective, aux, tower_gradients, gradients)` with dense
        gradients aligned with `tower_variables` and `variables`.
    """
    check_sub_batch_size(sub_batch_size)
    # 1. Embed without a tape.
    pieces = _each_sub_batch(
        inputs,
        sub_batch_size,
        lambda sub, start, state: (
            state + [tf.stop_gradient(tf.cast(encode(sub), "float32"))]
        ),
        collect=True,
    )
    embeddings = tf.concat(pieces, axis=0)
    embeddings.set_shape([None, width])
    # 2. The whole-batch loss and its gradient w.r.t. the embeddings.
    with tf.GradientTape() as tape:
        tape.watch(embeddings)
        objective, aux = objective_fn(embeddings)
    embedding_gradient, *gradients = tape.gradient(
        objective, [embeddings, *variables]
    )
    if embedding_gradient is None:
        embedding_gradient = tf.zeros_like(embeddings)

    # 3. Each sub-batch again, under a tape, fed its cached gradient.
    def accumulate(sub, start, totals):
        with tf.GradientTape() as sub_tape:
            sub_embeddings = encode(sub)
            rows = sub_embeddings.shape[0]
            if rows is None:
                rows = tf.shape(sub_embeddings)[0]
            # A dynamic start with a static size: XLA's DynamicSlice.
            upstream = tf.slice(embedding_gradient, [start, 0], [rows, -1])
            surrogate = tf.reduce_sum(
                tf.cast(sub_embeddings, "float32")
                * tf.cast(upstream, "float32")
            )
        sub_gradients = sub_tape.gradient(surrogate, tower_variables)
        return [
            total if g is None else total + _dense(g, total.dtype)
            for total, g in zip(totals, sub_gradients)
        ]

    totals = [tf.zeros(v.shape, _variable_dtype(v)) for v in tower_variables]
    tower_gradients = _each_sub_batch(
        inputs, sub_batch_size, accumulate, state=totals
    )
    gradients = [
        None if g is None else _dense(g, _variable_dtype(v))
        for g, v in zip(gradients, variables)
    ]
    return objective, aux, tower_gradients, gradients


def _variable_dtype(variable):
    return tf.as_dtype(variable.dtype)


def _dense(gradient, dtype):
    return tf.cast(tf.convert_to_tensor(gradient), dtype)


def _each_sub_batch(inputs, size, body, state=None, collect=False):
    """Runs `state = body(sub_inputs, start_row, state)` over sub-batches.

    One sub-batch at a time (`parallel_iterations=1`). With a static batch
    size, full sub-batches come from a reshape (static `[size, ...]`) and a
    shorter last one runs once more outside the loop; otherwise sub-batches
    are dynamic slices. `collect`: `state` is a list of `[s, D]` pieces
    (the loop stacks them in a TensorArray).
    """
    first = next(iter(inputs.values()))
    batch = first.shape[0]
    if batch is None:
        return _dynamic_sub_batches(inputs, size, body, state, collect)
    full, remainder = divmod(batch, size)
    results = [] if collect else state
    if full:
        blocks = {
            key: tf.reshape(
                value[: full * size], [full, size, *value.shape[1:]]
            )
            for key, value in inputs.items()
        }

        def step(k, carried):
            sub = {key: value[k] for key, value in blocks.items()}
            if collect:
                (piece,) = body(sub, k * size, [])
                return carried.write(k, piece)
            return body(sub, k * size, carried)

        if collect:
            carried = tf.TensorArray(tf.float32, size=full)
            carried = _while(full, step, carried, collect=True)
            stacked = carried.stack()
            results = [tf.reshape(stacked, [full * size, -1])]
        else:
            results = list(_while(full, step, results))
    if remainder:
        sub = {key: value[full * size :] for key, value in inputs.items()}
        if collect:
            results = results + body(sub, full * size, [])
        else:
            results = body(sub, full * size, results)
    return results


def _dynamic_sub_batches(inputs, size, body, state, collect):
    first = next(iter(inputs.values()))
    batch = tf.shape(first)[0]
    count = (batch + size - 1) // size

    def sub_batch(k):
        start = k * size
        stop = tf.minimum(start + size, batch)
        return {key: value[start:stop] for key, value in inputs.items()}, start

    if collect:

        def step(k, pieces):
            sub, start = sub_batch(k)
            (piece,) = body(sub, start, [])
            return pieces.write(k, piece)

        pieces = tf.TensorArray(tf.float32, size=count, infer_shape=False)
        pieces = _while(count, step, pieces, collect=True)
        return [pieces.concat()]

    def step(k, carried):
        sub, start = sub_batch(k)
        return body(sub, start, carried)

    return list(_while(count, step, state))


def _while(count, step, state, collect=False):
    if collect:
        return tf.while_loop(
            lambda k, _: k < count,
            lambda k, s: (k + 1, step(k, s)),
            (tf.constant(0), state),
            parallel_iterations=1,
        )[1]
    return tf.while_loop(
        lambda k, *_: k < count,
        lambda k, *s: (k + 1, *step(k, list(s))),
        (tf.constant(0), *state),
        parallel_iterations=1,
    )[1:]
