"""Blockwise contrastive and sigmoid losses: `b x block` logits at a time.

A replica scores its `b` local rows against the `G` rows of the global
batch. Materialised, that is a `[b, G]` logit matrix in the forward pass and
another one (its gradient) in the backward pass. The functions here loop
over column blocks of `block` rows of the other modality in a
`tf.while_loop` (one iteration at a time), and a hand-written
`tf.custom_gradient` recomputes each block in the backward pass, so no
tensor larger than `[b, block]` is ever alive: memory is linear in `G`.

- Softmax (InfoNCE): the row direction keeps a streaming log-sum-exp (a
  running maximum and a rescaled sum per row); on one device, where the
  rows are the whole batch, every column block also holds complete columns,
  so the column direction's log-sum-exp is exact per block.
- Sigmoid (SigLIP): every logit is its own binary problem; the loss is a
  plain sum over blocks.

Columns are zero-padded to a multiple of the block size and masked, so every
block has the static shape `[b, block]` (XLA and TPU friendly, and the traced
graph can be checked for its largest tensor).

Gradients: with `g = dL/dlogits` of a block (`logits = t * R C_k^T + bias`),
`dR = t * sum_k g_k C_k`, `dC_k = t * g_k^T R`, `dt = sum g * R C_k^T`,
`dbias = sum g`. For the softmax, `g_ij = w_i (p_ij - [j = o+i]) +
v_j (q_ij - [i = j])` where `p` is the row softmax, `q` the column softmax
(one device only), `w`, `v` the upstream gradients of the per-row and
per-column losses. For the sigmoid with labels `z_ij = +-1`,
`g_ij = -w_i z_ij sigmoid(-z_ij logits_ij)`.
"""

import tensorflow as tf

DEFAULT_BLOCK_SIZE = 1024


def check_positive_int(value, name, meaning):
    """Returns `value`, or raises naming `name` unless it is an int >= 1."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(
            f"`{name}` must be a positive integer ({meaning}). "
            f"Received: {name}={value!r}"
        )
    return value


def check_block_size(block_size):
    """Raises a clear error unless `block_size` is a positive integer."""
    return check_positive_int(block_size, "block_size", "columns per block")


def unpack_batch(
    all_image_embeddings=None, all_text_embeddings=None, label_offset=0
):
    """`(all_image_embeddings, all_text_embeddings, label_offset)` from a
    loss's `**batch` keywords (see `PairLoss.batch_loss`), with their
    one-device defaults."""
    return all_image_embeddings, all_text_embeddings, label_offset


def _float32(*tensors):
    return [tf.cast(tensor, "float32") for tensor in tensors]


def _row_labels(rows, label_offset):
    """`[b]` global column of each local row's pair."""
    return tf.range(tf.shape(rows)[0]) + tf.cast(label_offset, "int32")


def _column_blocks(columns, block_size):
    """`[G, D]` -> zero-padded `[n, block, D]` blocks, `[n, block]` mask,
    the block size used and the block count `n`."""
    total = columns.shape[0]
    if total is not None:
        # Never pad a small batch up to a large block.
        block_size = max(1, min(block_size, total))
    size = tf.shape(columns)[0]
    blocks = -(-size // block_size)
    padding = blocks * block_size - size
    padded = tf.pad(columns, [[0, padding], [0, 0]])
    padded = tf.reshape(padded, [-1, block_size, _width(columns)])
    valid = tf.reshape(tf.range(blocks * block_size) < size, [-1, block_size])
    return padded, valid, block_size, tf.shape(padded)[0]


def _loop(count, body, state):
    """`for k in range(count): state = body(k, *state)`, one at a time."""
    return tf.while_loop(
        lambda k, *_: k < count,
        lambda k, *s: (k + 1, *body(k, *s)),
        (tf.constant(0), *state),
        parallel_iterations=1,
    )[1:]


def _top1_masks(row_labels, column_ids):
    """Masks of a block: the label, columns before it, columns after it."""
    labels = row_labels[:, None]
    columns = column_ids[None, :]
    return columns == labels, columns < labels, columns > labels


def _masked_max(values, mask, axis):
    return tf.reduce_max(tf.where(mask, values, -float("inf")), axis=axis)


def blockwise_softmax_terms(
    rows,
    columns,
    temperature,
    label_offset=0,
    block_size=DEFAULT_BLOCK_SIZE,
    columns_too=False,
):
    """Per-row (and per-column) InfoNCE terms, one column block at a time.

    Args:
        rows: `[b, D]` L2-normalised local embeddings of one modality.
        columns: `[G, D]` L2-normalised embeddings of the other modality.
        temperature: scalar logit scale `t`.
        label_offset: global column of local row 0's pair.
        block_size: int. Columns per block.
        columns_too: bool. Also return the column direction's terms; only
            valid when `rows` is the whole batch (`b == G`, offset 0).

    Returns:
        `(row_losses, row_correct, column_losses, column_correct)`:
        `row_losses[i] = logsumexp_j(l_ij) - l_i,o+i` with
        `l = t * rows @ columns^T`, `row_correct` the top-1 hits (float,
        ties as `argmax`); the column terms are `None` unless
        `columns_too`. Gradients flow through the losses only.
    """
    check_block_size(block_size)
    rows, columns, temperature = _float32(rows, columns, temperature)
    row_labels = _row_labels(rows, label_offset)

    @tf.custom_gradient
    def terms(rows, columns, temperature):
        blocks, valid, block, count = _column_blocks(columns, block_size)
        batch = tf.shape(rows)[0]

        def block_logits(k):
            # [b, D] x [D, block] -> [b, block]: the only large tensors.
            dots = tf.matmul(rows, blocks[k], transpose_b=True)
            ids = k * block + tf.range(block)
            return dots, temperature * dots, ids, valid[k][None, :]

        def forward(k, top, total, positive, before, after, col_ta):
            _, logits, ids, mask = block_logits(k)
            label, earlier, later = _top1_masks(row_labels, ids)
            masked = tf.where(mask, logits, -float("inf"))
            # Streaming log-sum-exp: rescale the running sum to a new max.
            new_top = tf.maximum(top, tf.reduce_max(masked, axis=1))
            total = total * tf.exp(top - new_top) + tf.reduce_sum(
                tf.exp(masked - new_top[:, None]), axis=1
            )
            positive += tf.reduce_sum(tf.where(label, logits, 0.0), axis=1)
            before = tf.maximum(before, _masked_max(masked, earlier, 1))
            after = tf.maximum(after, _masked_max(masked, later, 1))
            if columns_too:
                # Every row is here: complete columns, exact per block.
                column_lse = tf.reduce_logsumexp(logits, axis=0)
                column_positive = tf.reduce_sum(
                    tf.where(label, logits, 0.0), axis=0
                )
                hit = (column_positive > _masked_max(logits, later, 0)) & (
                    column_positive >= _masked_max(logits, earlier, 0)
                )
                col_ta = col_ta.write(
                    k,
                    tf.stack(
                        [column_lse, column_positive, tf.cast(hit, "float32")]
                    ),
                )
            return new_top, total, positive, before, after, col_ta

        minus_inf = tf.fill([batch], -float("inf"))
        zeros = tf.zeros([batch])
        col_ta = tf.TensorArray("float32", size=count if columns_too else 0)
        top, total, positive, before, after, col_ta = _loop(
            count,
            forward,
            (minus_inf, zeros, zeros, minus_inf, minus_inf, col_ta),
        )
        row_lse = top + tf.math.log(total)
        row_losses = row_lse - positive
        row_correct = tf.cast(
            (positive > before) & (positive >= after), "float32"
        )
        outputs = [row_losses, row_correct]
        column_lse = None
        if columns_too:
            # [n, 3, block] -> three padded [n * block] vectors.
            stacked = tf.transpose(col_ta.stack(), [1, 0, 2])
            stacked = tf.reshape(stacked, [3, -1])
            column_lse = stacked[0]
            size = tf.shape(columns)[0]
            outputs += [(stacked[0] - stacked[1])[:size], stacked[2][:size]]

        def gradient(d_row_losses, d_row_correct, *column_grads):
            del d_row_correct
            d_row_losses = _zeros_if_none(d_row_losses, [batch])
            if columns_too:
                d_column_losses = _zeros_if_none(
                    column_grads[0], [tf.shape(columns)[0]]
                )
                d_column_losses = tf.pad(
                    d_column_losses,
                    [[0, count * block - tf.shape(d_column_losses)[0]]],
                )

            def backward(k, d_rows, d_temperature, d_blocks):
                dots, logits, ids, mask = block_logits(k)
                label = tf.cast(row_labels[:, None] == ids[None, :], "float32")
                row_softmax = tf.exp(logits - row_lse[:, None])
                g = d_row_losses[:, None] * (row_softmax - label)
                if columns_too:
                    lse = column_lse[k * block : (k + 1) * block]
                    d_cols = d_column_losses[k * block : (k + 1) * block]
                    g += d_cols[None, :] * (
                        tf.exp(logits - lse[None, :]) - label
                    )
                g = tf.where(mask, g, 0.0)
                d_rows += temperature * tf.matmul(g, blocks[k])
                d_temperature += tf.reduce_sum(g * dots)
                d_blocks = d_blocks.write(
                    k, temperature * tf.matmul(g, rows, transpose_a=True)
                )
                return d_rows, d_temperature, d_blocks

            d_rows, d_temperature, d_blocks = _loop(
                count,
                backward,
                (
                    tf.zeros_like(rows),
                    tf.zeros([]),
                    tf.TensorArray("float32", size=count),
                ),
            )
            return d_rows, _unpad(d_blocks, columns), d_temperature

        return tuple(outputs), gradient

    outputs = terms(rows, columns, temperature)
    if not columns_too:
        outputs = (*outputs, None, None)
    return outputs


def blockwise_sigmoid_terms(
    rows,
    columns,
    temperature,
    bias,
    label_offset=0,
    block_size=DEFAULT_BLOCK_SIZE,
    columns_too=False,
):
    """Per-row sigmoid (SigLIP) losses, one column block at a time.

    Same arguments as `blockwise_softmax_terms`, plus `bias`, the scalar
    logit bias `b`; with `columns_too`, only the column direction's top-1
    hits are added (the sigmoid loss has no column terms).

    Returns:
        `(row_losses, row_correct, column_correct)`: `row_losses[i] =
        -sum_j log sigmoid(z_ij (t * rows_i . columns_j + b))` with
        `z_ij = 1` for the pair (`j = offset + i`), else -1; top-1 hits as
        in `blockwise_softmax_terms` (`None` for the columns unless
        `columns_too`). Gradients flow through `row_losses` only.
    """
    check_block_size(block_size)
    rows, columns, temperature, bias = _float32(
        rows, columns, temperature, bias
    )
    row_labels = _row_labels(rows, label_offset)

    @tf.custom_gradient
    def terms(rows, columns, temperature, bias):
        blocks, valid, block, count = _column_blocks(columns, block_size)
        batch = tf.shape(rows)[0]

        def block_logits(k):
            dots = tf.matmul(rows, blocks[k], transpose_b=True)
            ids = k * block + tf.range(block)
            label, earlier, later = _top1_masks(row_labels, ids)
            signs = tf.where(label, 1.0, -1.0)
            logits = temperature * dots + bias
            return dots, logits, signs, (label, earlier, later), valid[k]

        def forward(k, losses, positive, before, after, col_ta):
            _, logits, signs, (label, earlier, later), mask = block_logits(k)
            nll = -tf.math.log_sigmoid(signs * logits)
            losses += tf.reduce_sum(tf.where(mask[None, :], nll, 0.0), axis=1)
            positive += tf.reduce_sum(tf.where(label, logits, 0.0), axis=1)
            masked = tf.where(mask[None, :], logits, -float("inf"))
            before = tf.maximum(before, _masked_max(masked, earlier, 1))
            after = tf.maximum(after, _masked_max(masked, later, 1))
            if columns_too:
                column_positive = tf.reduce_sum(
                    tf.where(label, logits, 0.0), axis=0
                )
                hit = (column_positive > _masked_max(logits, later, 0)) & (
                    column_positive >= _masked_max(logits, earlier, 0)
                )
                col_ta = col_ta.write(k, tf.cast(hit, "float32"))
            return losses, positive, before, after, col_ta

        zeros = tf.zeros([batch])
        minus_inf = tf.fill([batch], -float("inf"))
        col_ta = tf.TensorArray("float32", size=count if columns_too else 0)
        losses, positive, before, after, col_ta = _loop(
            count, forward, (zeros, zeros, minus_inf, minus_inf, col_ta)
        )
        correct = tf.cast((positive > before) & (positive >= after), "float32")
        outputs = [losses, correct]
        if columns_too:
            outputs.append(
                tf.reshape(col_ta.stack(), [-1])[: tf.shape(columns)[0]]
            )

        def gradient(d_losses, *unused):
            del unused
            d_losses = _zeros_if_none(d_losses, [batch])

            def backward(k, d_rows, d_temperature, d_bias, d_blocks):
                dots, logits, signs, _, mask = block_logits(k)
                # d/dl of -log sigmoid(z l) = -z sigmoid(-z l).
                g = d_losses[:, None] * (-signs * tf.sigmoid(-signs * logits))
                g = tf.where(mask[None, :], g, 0.0)
                d_rows += temperature * tf.matmul(g, blocks[k])
                d_temperature += tf.reduce_sum(g * dots)
                d_bias += tf.reduce_sum(g)
                d_blocks = d_blocks.write(
                    k, temperature * tf.matmul(g, rows, transpose_a=True)
                )
                return d_rows, d_temperature, d_bias, d_blocks

            d_rows, d_temperature, d_bias, d_blocks = _loop(
                count,
                backward,
                (
                    tf.zeros_like(rows),
                    tf.zeros([]),
                    tf.zeros([]),
                    tf.TensorArray("float32", size=count),
                ),
            )
            return d_rows, _unpad(d_blocks, columns), d_temperature, d_bias

        return tuple(outputs), gradient

    outputs = terms(rows, columns, temperature, bias)
    if not columns_too:
        outputs = (*outputs, None)
    return outputs


def _zeros_if_none(gradient, shape):
    return tf.zeros(shape) if gradient is None else gradient


def _unpad(d_blocks, columns):
    """TensorArray of `[block, D]` gradients -> `[G, D]`."""
    stacked = d_blocks.stack()
    flat = tf.reshape(stacked, [-1, _width(columns)])
    return flat[: tf.shape(columns)[0]]


def blockwise_contrastive_terms(
    image_embeddings,
    text_embeddings,
    temperature,
    block_size=DEFAULT_BLOCK_SIZE,
    **batch,
):
    """Symmetric InfoNCE over column blocks, with its top-1 hits.

    Same arguments (`**batch`: see `unpack_batch`) and value as
    `keras_lit.losses.contrastive_loss`, plus `block_size`. On one device
    (nothing gathered) one pass over the blocks gives both directions;
    given the gathered embeddings, local images are scored against all
    texts and local texts against all images.

    Returns:
        `(loss, image_to_text_correct, text_to_image_correct)`: the mean
        loss over local rows and two `[b]` float top-1 hit vectors.
    """
    all_image_embeddings, all_text_embeddings, label_offset = unpack_batch(
        **batch
    )
    if all_image_embeddings is None and all_text_embeddings is None:
        row_losses, row_hits, column_losses, column_hits = (
            blockwise_softmax_terms(
                image_embeddings,
                text_embeddings,
                temperature,
                block_size=block_size,
                columns_too=True,
            )
        )
        return (
            tf.reduce_mean(0.5 * (row_losses + column_losses)),
            row_hits,
            column_hits,
        )
    if all_image_embeddings is None:
        all_image_embeddings = image_embeddings
    if all_text_embeddings is None:
        all_text_embeddings = text_embeddings
    image_losses, image_hits, _, _ = blockwise_softmax_terms(
        image_embeddings,
        all_text_embeddings,
        temperature,
        label_offset,
        block_size,
    )
    text_losses, text_hits, _, _ = blockwise_softmax_terms(
        text_embeddings,
        all_image_embeddings,
        temperature,
        label_offset,
        block_size,
    )
    loss = tf.reduce_mean(0.5 * (image_losses + text_losses))
    return loss, image_hits, text_hits


def blockwise_contrastive_loss(
    image_embeddings,
    text_embeddings,
    temperature,
    block_size=DEFAULT_BLOCK_SIZE,
    **batch,
):
    """`contrastive_loss` computed over column blocks of `block_size`.

    Same value and gradients as `keras_lit.losses.contrastive_loss`, but no
    tensor larger than `[b, block_size]` is alive, forward or backward.

    Example:
    >>> import numpy as np
    >>> x = np.eye(3, dtype="float32")
    >>> float(blockwise_contrastive_loss(x, x, 100.0, block_size=2)) < 1e-6
    True
    """
    return blockwise_contrastive_terms(
        image_embeddings, text_embeddings, temperature, block_size, **batch
    )[0]


def blockwise_sigmoid_loss_terms(
    image_embeddings,
    text_embeddings,
    temperature,
    bias,
    block_size=DEFAULT_BLOCK_SIZE,
    **batch,
):
    """Sigmoid loss over column blocks, with its top-1 hits.

    Same arguments (`**batch`: see `unpack_batch`) and value as
    `keras_lit.losses.sigmoid_loss`.

    Returns:
        `(loss, image_to_text_correct, text_to_image_correct)`; under a
        strategy only the direction that was scored has hits, the other is
        `None`.
    """
    all_image_embeddings, all_text_embeddings, label_offset = unpack_batch(
        **batch
    )
    local = all_image_embeddings is None and all_text_embeddings is None
    swapped = all_text_embeddings is None and not local
    if local:
        rows, columns = image_embeddings, text_embeddings
    elif swapped:
        # Only the images were gathered: local texts against all images.
        rows, columns = text_embeddings, all_image_embeddings
    else:
        rows, columns = image_embeddings, all_text_embeddings
    losses, row_hits, column_hits = blockwise_sigmoid_terms(
        rows,
        columns,
        temperature,
        bias,
        label_offset,
        block_size,
        columns_too=local,
    )
    loss = tf.reduce_mean(losses)
    if swapped:
        return loss, column_hits, row_hits
    return loss, row_hits, column_hits


def _width(tensor):
    """The static last dimension, else the dynamic one."""
    width = tensor.shape[-1]
    return tf.shape(tensor)[-1] if width is None else width
