"""The examples in public docstrings run and print what they claim."""

import doctest
import importlib

import pytest

MODULES = [
    "keras_lit.image_header",
    "keras_lit.losses",
    "keras_lit.layers.contrastive_head",
    "keras_lit.layers.locked_image_encoder",
    "keras_lit.layers.text_encoder",
    "keras_lit.layers.transformer_block",
    "keras_lit.layers.transformer_text_backbone",
    "keras_lit.layers.vit_backbone",
    "keras_lit.models.lit_model",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    module = importlib.import_module(name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    examples = 0
    for test in finder.find(module, module.__name__):
        examples += len(test.examples)
        runner.run(test)
    results = runner.summarize(verbose=False)
    assert examples > 0, f"{name} has no docstring examples"
    assert results.failed == 0, f"{results.failed} failing examples in {name}"
