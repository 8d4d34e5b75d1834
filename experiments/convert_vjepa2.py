"""lawm-convert-vjepa2: released V-JEPA 2 weights -> an encoder folder that `model.encoder.checkpoint` reads.

    lawm-convert-vjepa2 --input vitl.pt --output /data/vjepa2-vitl          # original PyTorch checkpoint
    lawm-convert-vjepa2 --input ./vjepa2-vitl-fpc64-256 --output /data/vitl  # Hugging Face folder

The output holds `encoder_spec.json` (the encoder's size) and an orbax checkpoint `params/`. A Hugging Face
folder can also be given to the trainer directly; converting it once saves parsing it at every start.
Nothing is downloaded; .pt files are read with torch.load(weights_only=True).
"""

from __future__ import annotations

from absl import flags

from experiments import cli

_INPUT = flags.DEFINE_string("input", None, "A .pt checkpoint, a Hugging Face folder or a converted folder.")
_OUTPUT = flags.DEFINE_string("output", None, "Folder to write (created if needed).")
_NUM_HEADS = flags.DEFINE_integer(
    "num_heads", None, "Attention heads; only for .pt files of unreleased sizes."
)
flags.mark_flags_as_required(["input", "output"])


def main(argv):
    del argv  # cli.run rejects positional arguments
    import jax

    from lawm import weights

    spec, params = weights.load(_INPUT.value, num_heads=_NUM_HEADS.value)
    output = weights.save_converted(spec, params, _OUTPUT.value)
    count = sum(x.size for x in jax.tree.leaves(params))
    print(f"Wrote {output}: {count:,} encoder parameters, {spec}")


def run():
    # Weights that cannot become our encoder (lawm.weights.WeightsError, a ValueError), a missing input.
    cli.run("lawm-convert-vjepa2", main, errors=(ValueError, FileNotFoundError, NotADirectoryError))


if __name__ == "__main__":
    run()
