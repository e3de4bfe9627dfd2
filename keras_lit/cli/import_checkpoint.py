"""`keras-lit import`: a Google LiT `.npz` checkpoint -> a LiT preset."""

import os

NAME = "import"
HELP = "convert a Google LiT .npz checkpoint into a LiT preset"


def add_arguments(parser):
    parser.add_argument(
        "--checkpoint",
        required=True,
        help="a LiT .npz (e.g. LiT-B16B_2.npz) or a released model name "
        "(lit_b16b_2, lit_l16l, lit_l16s, lit_l16ti, lit_b16b)",
    )
    parser.add_argument(
        "--vocab",
        help="its WordPiece .txt or SentencePiece .model (default: the file "
        "next to the .npz with the same name)",
    )
    parser.add_argument("--out", required=True, help="preset directory")
    parser.add_argument(
        "--text-num-heads",
        type=int,
        default=None,
        help="heads of a BERT text tower (not stored in the file; default "
        "width // 64, or the released model's)",
    )


def run(args):
    from keras_lit.checkpoints import import_checkpoint
    from keras_lit.models import LiTModel

    out = os.path.expanduser(args.out)
    if os.path.exists(os.path.join(out, "config.json")):
        raise ValueError(
            f"--out {args.out} already holds a preset; choose a new directory"
        )
    import_checkpoint(
        args.checkpoint,
        out,
        cls=LiTModel,
        vocabulary=args.vocab,
        text_num_heads=args.text_num_heads,
    )
    print(f"[keras-lit] Wrote the LiT preset {out}", flush=True)
    print(
        f"[keras-lit] Serve it: keras-lit export --model {out} --output "
        "exports/lit --resize stretch",
        flush=True,
    )
    return 0
