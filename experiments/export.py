"""lawm-export: a trained world model as a portable folder (JSON + safetensors, no pickle).

    lawm-export --workdir=WORKDIR --output=DIR [--step=N] [--decoder=DECODER_RUN]

DIR/config.json + DIR/model.safetensors (+ DIR/decoder.safetensors with --decoder): everything
`lawm.load(DIR)` needs, with bit-identical outputs to the workdir's checkpoint. The frozen encoder's weights
are included (lawm/export.py says why). Re-running replaces an earlier export in DIR; a DIR holding anything
else is refused.
"""

from __future__ import annotations

import os

from absl import flags, logging

from experiments import cli, log_filter

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

_WORKDIR = flags.DEFINE_string("workdir", None, "The world model run's workdir (lawm-train --workdir).")
_OUTPUT = flags.DEFINE_string("output", None, "The folder to write.")
_STEP = flags.DEFINE_integer("step", None, "Export this checkpoint (default: the latest).")
_DECODER = flags.DEFINE_string("decoder", None, "A decoder run's workdir, exported alongside.")
flags.mark_flags_as_required(["workdir", "output"])


def main(argv):
    del argv
    logging.get_absl_handler().addFilter(log_filter.quiet_dependencies)
    from lawm import export

    output = export.export(_WORKDIR.value, _OUTPUT.value, step=_STEP.value, decoder=_DECODER.value)
    names = sorted(p.name for p in output.iterdir() if not p.name.startswith("."))
    print(f"exported {_WORKDIR.value} to {output}: {', '.join(names)}")


def run():
    cli.run("lawm-export", main, errors=(ValueError, FileNotFoundError, "lawm.checkpoint.CheckpointError"))


if __name__ == "__main__":
    run()
