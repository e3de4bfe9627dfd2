"""Distribution strategies and input sharding for the global-batch loss.

LiT's loss sees the whole global batch: every replica scores its local rows
against the embeddings of every other replica (see `LiTModel`). This module
builds the strategy that runs those replicas and prepares input pipelines
for it:

- `get_strategy(name)`: one call for a single host with N GPUs
  (`"mirrored"`), several hosts (`"multi_worker"`, from `TF_CONFIG`), a
  Cloud TPU (`"tpu"`, through `TPUClusterResolver`) or no distribution
  (`"default"`); `"auto"` picks one from the environment.
- `shard_dataset(dataset, global_batch_size)`: batches raw examples by the
  global batch with static shapes and sets the auto-shard policy (by FILE
  for TFRecord shards, by DATA otherwise).
- `per_replica_batch_size(global_batch_size)`: `global / replicas`, or a
  clear error when it does not divide.

Example:
>>> strategy = get_strategy("auto")  # doctest: +SKIP
>>> with strategy.scope():  # doctest: +SKIP
...     model = keras_lit.LiTModel(image_encoder, text_encoder)
...     model.compile()
>>> model.fit(shard_dataset(dataset, 4096, strategy))  # doctest: +SKIP
"""

import json
import os
import threading

import tensorflow as tf

STRATEGIES = ("auto", "mirrored", "multi_worker", "tpu", "default")
# Task types MultiWorkerMirroredStrategy understands ("evaluator" is a
# side-car that does not train).
TASK_TYPES = ("chief", "worker", "evaluator")
AUTO_SHARD_FILE = tf.data.experimental.AutoShardPolicy.FILE
AUTO_SHARD_DATA = tf.data.experimental.AutoShardPolicy.DATA

# Every MirroredStrategy starts its collective group keys at 1, so two
# strategies with different device sets in one process collide ("... is
# joining a group with size4, but that group has size 2"). Give each
# strategy made here its own key range.
_KEY_RANGE = 100_000
_key_lock = threading.Lock()
_key_base = [0]


def get_strategy(
    name="auto", devices=None, tpu=None, communication="auto", tf_config=None
):
    """Returns a `tf.distribute.Strategy` for LiT training.

    Create the strategy at the start of the program, before other
    TensorFlow calls (`"multi_worker"` and `"tpu"` must configure the
    runtime first), then build and compile the model under
    `strategy.scope()`.

    Args:
        name: string. One of:
            - `"auto"`: `"multi_worker"` if `TF_CONFIG` describes more than
              one task; `"tpu"` if `tpu` is given, `TPU_NAME` is set or a
              TPU VM device (`/dev/accel0`, `/dev/vfio/0`) exists;
              `"mirrored"` over all GPUs if there are two or more;
              `"default"` otherwise.
            - `"mirrored"`: `tf.distribute.MirroredStrategy` over `devices`
              (default: every GPU, else the CPU).
            - `"multi_worker"`: `tf.distribute.MultiWorkerMirroredStrategy`
              configured by the `TF_CONFIG` environment variable (checked
              first, see `parse_tf_config`).
            - `"tpu"`: `tf.distribute.TPUStrategy` through
              `TPUClusterResolver(tpu)`.
            - `"default"`: TensorFlow's default (no-op) strategy.
        devices: optional list of device names for `"mirrored"`, e.g.
            `["/gpu:0", "/gpu:1"]`.
        tpu: optional string for `"tpu"`: `"local"` on a TPU VM, a TPU
            name or a `grpc://` address. Defaults to `$TPU_NAME`, else
            `"local"`.
        communication: string. Collective implementation for
            `"multi_worker"`: `"auto"`, `"ring"` (gRPC) or `"nccl"`.
            Defaults to `"auto"`.
        tf_config: optional dict or JSON string to use instead of the
            `TF_CONFIG` environment variable (it is then exported to it,
            since TensorFlow reads it from there).

    Returns:
        A `tf.distribute.Strategy`.

    Example:
    >>> get_strategy("default").num_replicas_in_sync
    1
    """
    if name not in STRATEGIES:
        raise ValueError(
            f"`name` must be one of {', '.join(map(repr, STRATEGIES))}. "
            f"Received: name={name!r}"
        )
    if tf_config is not None:
        parse_tf_config(tf_config)
        if not isinstance(tf_config, str):
            tf_config = json.dumps(tf_config)
        os.environ["TF_CONFIG"] = tf_config
    if name == "auto":
        name = _auto_strategy_name(tpu)
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return _mirrored_strategy(devices)
    if name == "multi_worker":
        return _multi_worker_strategy(communication)
    return _tpu_strategy(tpu)


def parse_tf_config(tf_config=None):
    """Parses and checks a `TF_CONFIG` for `MultiWorkerMirroredStrategy`.

    Args:
        tf_config: optional dict or JSON string. Defaults to the
            `TF_CONFIG` environment variable.

    Returns:
        The parsed dict, e.g. `{"cluster": {"worker": ["host1:12345",
        "host2:12345"]}, "task": {"type": "worker", "index": 0}}`.

    Raises:
        ValueError naming the problem: not JSON, no `cluster`, a bad
        `host:port`, a duplicate address, a missing or out-of-range `task`,
        a `ps` job (that is `ParameterServerStrategy`'s).

    Example:
    >>> parse_tf_config('{"cluster": {"worker": ["localhost:2222"]}, '
    ...                 '"task": {"type": "worker", "index": 0}}')["task"]
    {'type': 'worker', 'index': 0}
    """
    source = tf_config
    if tf_config is None:
        source = tf_config = os.environ.get("TF_CONFIG")
        if not tf_config:
            raise ValueError(
                "Multi-worker training needs the TF_CONFIG environment "
                'variable, e.g. TF_CONFIG=\'{"cluster": {"worker": '
                '["host1:12345", "host2:12345"]}, "task": {"type": '
                '"worker", "index": 0}}\' (a different index on each '
                "host). Received: TF_CONFIG unset or empty"
            )
    if isinstance(tf_config, str):
        try:
            tf_config = json.loads(tf_config)
        except json.JSONDecodeError as error:
            raise ValueError(
                f"TF_CONFIG must be valid JSON ({error}). "
                f"Received: TF_CONFIG={source!r}"
            ) from None
    if not isinstance(tf_config, dict):
        raise ValueError(
            "TF_CONFIG must be a JSON object with 'cluster' and 'task'. "
            f"Received: TF_CONFIG={source!r}"
        )
    cluster = tf_config.get("cluster")
    if not isinstance(cluster, dict) or not cluster:
        raise ValueError(
            "TF_CONFIG must have a non-empty 'cluster' mapping each job "
            "('chief', 'worker') to a list of 'host:port' addresses. "
            f"Received: TF_CONFIG={source!r}"
        )
    if "ps" in cluster:
        raise ValueError(
            "TF_CONFIG has a 'ps' job, which is for "
            "ParameterServerStrategy; LiT trains with synchronous "
            "all-reduce ('chief'/'worker' jobs only). "
            f"Received: TF_CONFIG={source!r}"
        )
    seen = set()
    for job, addresses in cluster.items():
        if job not in TASK_TYPES:
            raise ValueError(
                f"TF_CONFIG cluster jobs must be among {list(TASK_TYPES)}. "
                f"Received: job {job!r} in TF_CONFIG={source!r}"
            )
        if not isinstance(addresses, list) or not addresses:
            raise ValueError(
                f"TF_CONFIG cluster job {job!r} must be a non-empty list of "
                f"'host:port' strings. Received: {addresses!r}"
            )
        if job == "chief" and len(addresses) != 1:
            raise ValueError(
                "TF_CONFIG may have at most one 'chief'. "
                f"Received: chief={addresses!r}"
            )
        for address in addresses:
            _check_address(job, address)
            if address in seen:
                raise ValueError(
                    "Each TF_CONFIG task needs its own 'host:port'. "
                    f"Received: {address!r} twice in TF_CONFIG={source!r}"
                )
            seen.add(address)
    task = tf_config.get("task")
    if not isinstance(task, dict):
        raise ValueError(
            "TF_CONFIG must have a 'task' with this process's 'type' and "
            '\'index\', e.g. {"type": "worker", "index": 0}. '
            f"Received: TF_CONFIG={source!r}"
        )
    task_type = task.get("type")
    index = task.get("index")
    if task_type not in cluster:
        raise ValueError(
            f"TF_CONFIG task type must be one of the cluster's jobs "
            f"{sorted(cluster)}. Received: task={task!r}"
        )
    jobs = cluster[task_type]
    if isinstance(index, bool) or not isinstance(index, int):
        raise ValueError(
            f"TF_CONFIG task index must be an integer. Received: task={task!r}"
        )
    if not 0 <= index < len(jobs):
        raise ValueError(
            f"TF_CONFIG task index must be in [0, {len(jobs)}) for job "
            f"{task_type!r} ({len(jobs)} addresses). Received: task={task!r}"
        )
    return tf_config


def num_workers(strategy=None):
    """Number of hosts (input pipelines) that `strategy` trains on."""
    strategy = strategy or tf.distribute.get_strategy()
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None:
        return 1
    spec = resolver.cluster_spec().as_dict()
    return max(1, len(spec.get("chief", [])) + len(spec.get("worker", [])))


def is_multi_worker(strategy=None):
    """Whether `strategy` is a `MultiWorkerMirroredStrategy` over 2+ hosts.

    This is the condition under which Keras 3.15 `fit` needs `LiTModel`'s
    workaround (keras-team/keras issues 20585 and 20329).
    """
    strategy = strategy or tf.distribute.get_strategy()
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return False
    in_multi_worker_mode = getattr(
        strategy.extended, "_in_multi_worker_mode", None
    )
    if in_multi_worker_mode is not None:
        return bool(in_multi_worker_mode())
    return num_workers(strategy) > 1


def per_replica_batch_size(global_batch_size, strategy=None):
    """`global_batch_size / replicas`, or a `ValueError` if it won't divide.

    Args:
        global_batch_size: int. Examples per training step over all
            replicas (the number of negatives each example is scored
            against).
        strategy: optional `tf.distribute.Strategy`. Defaults to the
            current one.

    Example:
    >>> per_replica_batch_size(4096, get_strategy("default"))
    4096
    """
    strategy = strategy or tf.distribute.get_strategy()
    replicas = strategy.num_replicas_in_sync
    if (
        isinstance(global_batch_size, bool)
        or not isinstance(global_batch_size, int)
        or global_batch_size < 1
    ):
        raise ValueError(
            "`global_batch_size` must be a positive integer. "
            f"Received: global_batch_size={global_batch_size!r}"
        )
    if global_batch_size % replicas:
        below = global_batch_size // replicas * replicas
        raise ValueError(
            "`global_batch_size` must be divisible by the number of "
            f"replicas ({replicas}), so that every replica gets the same "
            f"number of rows; use {below or replicas} or "
            f"{below + replicas}. Received: "
            f"global_batch_size={global_batch_size}"
        )
    return global_batch_size // replicas


def auto_shard_policy(files=None, strategy=None):
    """FILE when every host can read its own TFRecord shards, else DATA.

    Args:
        files: optional list of the input files the dataset reads.
        strategy: optional `tf.distribute.Strategy`. Defaults to the
            current one.

    Returns:
        `tf.data.experimental.AutoShardPolicy.FILE` if `files` has at least
        one file per host, `AutoShardPolicy.DATA` otherwise (each host then
        reads everything and keeps its slice of each global batch).
    """
    if files is not None and len(files) >= num_workers(strategy):
        return AUTO_SHARD_FILE
    return AUTO_SHARD_DATA


def shard_dataset(
    dataset, global_batch_size, strategy=None, files=None, shuffle_seed=None
):
    """Batches raw LiT examples for `fit` under a distribution strategy.

    The result is batched by the global batch with `drop_remainder=True`
    (static shapes, as TPUs require), with the auto-shard policy from
    `auto_shard_policy(files)`. `LiTModel.fit` maps its preprocessor over
    it and `tf.distribute` hands each replica
    `per_replica_batch_size(global_batch_size)` rows of every batch.

    Args:
        dataset: an unbatched `tf.data.Dataset` of raw examples
            `{"images" or "image_embeddings", "texts"}`.
        global_batch_size: int. Examples per step over all replicas;
            must divide by the number of replicas.
        strategy: optional `tf.distribute.Strategy`. Defaults to the
            current one.
        files: optional list of the TFRecord shards `dataset` reads; with
            at least one per host, hosts read disjoint files.
        shuffle_seed: optional int. Shuffles within a buffer of
            `8 * global_batch_size` examples, with the same order on every
            host (needed when sharding by DATA). Defaults to no shuffle.

    Returns:
        A batched `tf.data.Dataset` to pass to `LiTModel.fit`.

    Example:
    >>> files = tf.io.gfile.glob("captions-*.tfrecord")  # doctest: +SKIP
    >>> dataset = tf.data.TFRecordDataset(files).map(parse)  # doctest: +SKIP
    >>> model.fit(shard_dataset(dataset, 4096, files=files))  # doctest: +SKIP
    """
    if not isinstance(dataset, tf.data.Dataset):
        raise ValueError(
            "`dataset` must be an unbatched tf.data.Dataset of raw "
            f"examples. Received: {type(dataset).__name__}"
        )
    strategy = strategy or tf.distribute.get_strategy()
    per_replica_batch_size(global_batch_size, strategy)
    if shuffle_seed is not None:
        dataset = dataset.shuffle(
            8 * global_batch_size,
            seed=shuffle_seed,
            reshuffle_each_iteration=True,
        )
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = auto_shard_policy(
        files, strategy
    )
    dataset = dataset.batch(global_batch_size, drop_remainder=True)
    return dataset.with_options(options)


def worker_backup_dir(backup_dir, strategy=None):
    """A backup directory of this worker's own, for `BackupAndRestore`.

    Workers must not share a `backup_dir` (Keras 3 then fails with
    `FileExistsError`). Under a multi-worker strategy this returns
    `<backup_dir>/<task_type>-<task_id>`, else `backup_dir` itself. Restart
    every worker with the same arguments to resume from its last backup.

    Example:
    >>> backup = keras.callbacks.BackupAndRestore(
    ...     worker_backup_dir("/backups/run-1"))  # doctest: +SKIP
    """
    strategy = strategy or tf.distribute.get_strategy()
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return backup_dir
    task = f"{resolver.task_type}-{resolver.task_id}"
    return os.path.join(backup_dir, task)


def replica_context():
    """The replica context inside `strategy.run`, else `None`.

    `None` without a strategy (plain single-device code) and in a
    cross-replica context; `LiTModel` then computes the loss on its one
    batch.
    """
    if not tf.distribute.has_strategy():
        return None
    return tf.distribute.get_replica_context()


def _auto_strategy_name(tpu):
    tf_config = os.environ.get("TF_CONFIG")
    if tf_config:
        cluster = parse_tf_config(tf_config)["cluster"]
        tasks = len(cluster.get("chief", [])) + len(cluster.get("worker", []))
        if tasks > 1:
            return "multi_worker"
    tpu_devices = os.path.exists("/dev/accel0") or os.path.exists("/dev/vfio/0")
    if tpu is not None or os.environ.get("TPU_NAME") or tpu_devices:
        return "tpu"
    if len(tf.config.list_physical_devices("GPU")) > 1:
        return "mirrored"
    return "default"


def _mirrored_strategy(devices):
    if devices is not None:
        devices = list(devices)
        if not devices or len(set(devices)) != len(devices):
            raise ValueError(
                "`devices` must be a non-empty list of distinct device "
                f"names, e.g. ['/gpu:0', '/gpu:1']. Received: {devices!r}"
            )
    cls = tf.distribute.MirroredStrategy
    with _key_lock:
        _key_base[0] += _KEY_RANGE
        previous = cls._collective_key_base
        cls._collective_key_base = _key_base[0]
        try:
            return cls(devices)
        finally:
            cls._collective_key_base = previous


def _multi_worker_strategy(communication):
    implementations = {
        "auto": tf.distribute.experimental.CommunicationImplementation.AUTO,
        "ring": tf.distribute.experimental.CommunicationImplementation.RING,
        "nccl": tf.distribute.experimental.CommunicationImplementation.NCCL,
    }
    if communication not in implementations:
        raise ValueError(
            f"`communication` must be one of {sorted(implementations)}. "
            f"Received: communication={communication!r}"
        )
    parse_tf_config()
    options = tf.distribute.experimental.CommunicationOptions(
        implementation=implementations[communication]
    )
    try:
        return tf.distribute.MultiWorkerMirroredStrategy(
            communication_options=options
        )
    except (RuntimeError, ValueError) as error:
        raise RuntimeError(
            "Could not start MultiWorkerMirroredStrategy. Call "
            "keras_lit.distribute.get_strategy('multi_worker') at the start "
            "of the program, before any other TensorFlow call, on every "
            f"worker. Cause: {error}"
        ) from error


def _tpu_strategy(tpu):
    tpu = tpu if tpu is not None else os.environ.get("TPU_NAME") or "local"
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu)
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
    except (tf.errors.OpError, ValueError, RuntimeError) as error:
        raise RuntimeError(
            f"No usable TPU for tpu={tpu!r}: {str(error).splitlines()[0]} "
            "On a TPU VM pass tpu='local' and install a TPU build of "
            "TensorFlow; otherwise pass the TPU name (or set TPU_NAME)."
        ) from error
    return tf.distribute.TPUStrategy(resolver)


def _check_address(job, address):
    host, _, port = str(address).rpartition(":")
    if (
        not isinstance(address, str)
        or not host
        or not port.isdigit()
        or not 0 < int(port) < 65536
    ):
        raise ValueError(
            f"TF_CONFIG addresses must be 'host:port' strings. "
            f"Received: {address!r} in job {job!r}"
        )
