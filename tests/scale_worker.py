"""One training process for the scale-out tests: `python -m tests.scale_worker --workdir=... [options]`.

Sets its simulated device count before JAX starts, joins the other processes over loopback when asked
(gloo CPU collectives), trains the tiny test config and prints its result as JSON on the last line.
With --record, it also writes the indices of the training records it read (one per line).
"""

import argparse
import json
import os


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--devices", type=int, default=2)
    parser.add_argument("--num_processes", type=int, default=1)
    parser.add_argument("--process_id", type=int, default=0)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--total_steps", type=int, default=6)
    parser.add_argument("--checkpoint_every", type=int, default=3)
    parser.add_argument("--record", default=None)
    args = parser.parse_args()
    os.environ["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={args.devices}"

    from lawm import distributed

    if args.num_processes > 1:
        distributed.initialize(f"127.0.0.1:{args.port}", args.num_processes, args.process_id)

    from data_pipelines import sources
    from lawm import train
    from tests.helpers import tiny_train_config

    if args.record:
        make_source, record = sources.make_source, open(args.record, "w", buffering=1)  # noqa: SIM115

        class Recorded:
            def __init__(self, source):
                self.source = source

            def __len__(self):
                return len(self.source)

            def __getitem__(self, index):
                record.write(f"{int(index)}\n")
                return self.source[index]

        sources.make_source = lambda data, split: (
            Recorded(make_source(data, split)) if split == "train" else make_source(data, split)
        )

    config = tiny_train_config(total_steps=args.total_steps)
    config.mesh = dict(data=-1)
    config.checkpoint_every = args.checkpoint_every
    result = train.train_and_evaluate(config, args.workdir)
    print(json.dumps({k: v for k, v in result.items() if k != "eval"}), flush=True)


if __name__ == "__main__":
    main()
