"""The grain input pipeline: any random-access source -> per-process batches of numpy arrays.

Each JAX process reads a disjoint slice of the source (index % process_count == process_index), shuffles
it with a seed (a fresh order every epoch), batches to its share of the global batch and prefetches with
threads (decoders release the GIL; on 2 cores threads beat processes). The iterator's state is a small
dict saved in every checkpoint, so a resumed run sees exactly the batches an uninterrupted one would.
"""

from __future__ import annotations

import grain
import jax


def per_process_batch(global_batch: int, process_count: int | None = None) -> int:
    process_count = jax.process_count() if process_count is None else process_count
    if global_batch % process_count:
        raise ValueError(f"batch_size {global_batch} is not divisible by the {process_count} processes")
    return global_batch // process_count


def train_dataset(
    source,
    *,
    global_batch: int,
    seed: int,
    num_threads: int = 2,
    prefetch: int = 4,
    process_index: int | None = None,
    process_count: int | None = None,
) -> grain.IterDataset:
    """Infinite, shuffled, batched stream of this process's share of `source`."""
    process_index = jax.process_index() if process_index is None else process_index
    process_count = jax.process_count() if process_count is None else process_count
    batch = per_process_batch(global_batch, process_count)
    dataset = grain.MapDataset.source(source)[process_index::process_count]
    dataset = dataset.shuffle(seed=seed).repeat(None).batch(batch, drop_remainder=True)
    return dataset.to_iter_dataset(grain.ReadOptions(num_threads=num_threads, prefetch_buffer_size=prefetch))


def eval_batches(source, *, num_examples: int, batch_size: int):
    """The first `num_examples` records of an evaluation source, in order, batched (a finite list)."""
    dataset = grain.MapDataset.source(source)[:num_examples].batch(batch_size, drop_remainder=False)
    return list(dataset)
