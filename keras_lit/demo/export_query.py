"""Step 5 of the demo: export a SavedModel and query its signatures."""

import os
import shutil

import tensorflow as tf

from keras_lit.demo import captions


def export_and_query(model, data, settings, output_dir):
    """Exports the SavedModel, reloads it and classifies a few images.

    The export bakes the shape labels in (`classify`) and answers any other
    label set given at query time (`zero_shot`), here the colours: both take
    PNG bytes and plain strings, as a serving client would send them.
    """
    from keras_lit import export

    samples = settings["export_samples"]
    images = data["eval_images"][:samples]
    image_bytes = tf.constant(
        [tf.io.encode_png(image).numpy() for image in images]
    )
    shape_names = captions.LABEL_SETS["shape"]
    colour_names = captions.LABEL_SETS["colour"]
    export_dir = os.path.join(output_dir, "export")
    if os.path.exists(export_dir):
        shutil.rmtree(export_dir)  # the demo's own output: one version
    path = export.export_for_serving(
        model,
        export_dir,
        class_names=shape_names,
        templates=list(captions.PROMPT_TEMPLATES["shape"]),
        top_k=3,
    )
    signatures = export.load(path)
    classified = signatures["classify"](image_bytes=image_bytes)
    answered = signatures["zero_shot"](
        image_bytes=image_bytes, class_names=tf.constant(colour_names)
    )
    queries = {}
    for name, class_names, outputs, top in (
        ("shape", shape_names, classified, "top_classes"),
        ("colour", colour_names, answered, "top_class"),
    ):
        top_class = outputs[top].numpy()
        if top_class.ndim == 2:
            top_class = top_class[:, 0]
        queries[name] = {
            "signature": "classify" if name == "shape" else "zero_shot",
            "class_names": class_names,
            "top_class": [label.decode("utf-8") for label in top_class],
            "top_probability": [
                float(p) for p in outputs["probabilities"].numpy().max(-1)
            ],
            "truth": [
                class_names[i] for i in data["eval_labels"][name][:samples]
            ],
        }
        queries[name]["correct"] = int(
            sum(
                a == b
                for a, b in zip(
                    queries[name]["top_class"], queries[name]["truth"]
                )
            )
        )
    return {
        "path": path,
        "queries": queries,
        "signatures": sorted(signatures),
    }
