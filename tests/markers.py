"""Marks the tests that `make test-fast` leaves out (a pytest plugin).

`make test` runs everything; `make test-fast` runs
`-m "not large and not browser and not multiprocess and not notebook"`.
A new test can carry its own `@pytest.mark.<name>`; this table marks the
existing ones in one place, by file, by fixture or by test name:
- `browser`: drives Chromium through Playwright.
- `multiprocess`: starts subprocesses or several processes.
- `notebook`: executes or checks the example notebooks.
- `large`: over ~20 s on 2 quiet cores (end-to-end training runs).
"""

import pytest

# Every test of these files.
FILES = {
    "cli_test.py": "multiprocess",  # `keras-lit` through real subprocesses
    "multi_worker_test.py": "multiprocess",  # two TF workers, SIGKILL
    "examples_test.py": "notebook",
}
# Every test that uses one of these fixtures.
FIXTURES = {
    "page": "browser",
    "browser": "browser",
    "fresh_processes": "multiprocess",  # export_test: a fresh interpreter
    # serving_client_test: a SavedModel served over real gRPC and REST.
    "server": "large",
}
# Single tests, by `file::name` (parameters ignored).
TESTS = {
    "app_test.py::test_command_line_serves_on_loopback": "multiprocess",
    "export_test.py::test_saved_model_cli_lists_the_documented_signatures": (
        "multiprocess"
    ),
    "precompute_test.py::test_killed_precompute_resumes_to_identical_shards": (
        "multiprocess"
    ),
    # End-to-end training runs, each over ~20 s on 2 cores.
    "lit_model_test.py::test_xla_step_matches_non_xla": "large",
    "lit_model_test.py::test_learnable_toy_task_reaches_high_retrieval_accuracy": (  # noqa: E501
        "large"
    ),
    "lit_model_test.py::test_unlocked_image_tower_trains": "large",
    "distribute_test.py::test_mirrored_fit_matches_one_device": "large",
    "distribute_test.py::test_sgd_updates_match_one_device": "large",
    "distribute_test.py::test_loss_scaling_matches_one_device_and_sees_every_replica": (  # noqa: E501
        "large"
    ),
    "distribute_test.py::test_uneven_last_batch_is_exact": "large",
    "distribute_test.py::test_xla_single_replica_runs_the_distributed_path": (
        "large"
    ),
    "precompute_test.py::test_training_on_precomputed_matches_on_the_fly": (
        "large"
    ),
    "presets_test.py::test_minilm_text_tower_trains_one_lu_step": "large",
    # Over ~5 s each on 2 cores (make test, --durations, 2026-12-07).
    "app_test.py::test_rest_api_answers_like_the_signatures": "large",
    "lit_model_test.py::test_keras_round_trip_is_exact": "large",
    "sigmoid_model_test.py::test_sigmoid_model_saves_evaluates_and_classifies": (  # noqa: E501
        "large"
    ),
    "distribute_test.py::test_gathered_loss_and_metrics_are_global": "large",
    "data_test.py::test_fit_under_a_mirrored_strategy_counts_once": "large",
    "callbacks_test.py::test_history_tensorboard_and_final_values": "large",
    "callbacks_test.py::test_caching": "large",
    "jit_choice_test.py::test_auto_choice_trains_like_the_non_xla_step": (  # noqa: E501
        "large"
    ),
    "data_test.py::test_bad_images_are_skipped_counted_and_fit_completes": (  # noqa: E501
        "large"
    ),
    "lit_model_test.py::test_mixed_precision_keeps_logits_float32": "large",
    "callbacks_test.py::test_schedules_by_steps_and_epochs": "large",
    "lit_model_test.py::test_fit_trains_text_tower_only": "large",
    "real_tower_test.py::test_imagenet_predictions_and_locked_encoder": "large",
    "serving_client_test.py::test_grpc_every_signature_round_trips": "large",
    "precompute_test.py::test_interrupted_by_an_exception_resumes_and_checks_the_order": (  # noqa: E501
        "large"
    ),
    "sigmoid_model_test.py::test_gradient_cached_steps_equal_plain_steps": (  # noqa: E501
        "large"
    ),
    "distribute_test.py::test_unknown_length_dataset_counts_only_real_steps": (  # noqa: E501
        "large"
    ),
    "checkpoints_test.py::test_fit_step_keeps_the_image_tower_and_trains_the_text_tower": (  # noqa: E501
        "large"
    ),
    # Over ~6 s on an xdist worker (make test-fast --durations, 2026-12-07).
    "lit_model_test.py::test_image_head_trains_but_backbone_stays": "large",
    "lit_model_test.py::test_fit_on_a_tf_data_pipeline": "large",
}


def pytest_collection_modifyitems(config, items):
    for item in items:
        file_name = item.path.name
        test_name = f"{file_name}::{item.originalname}"
        names = {FILES.get(file_name), TESTS.get(test_name)}
        names |= {FIXTURES.get(f) for f in getattr(item, "fixturenames", ())}
        for name in sorted(names - {None}):
            item.add_marker(getattr(pytest.mark, name))
