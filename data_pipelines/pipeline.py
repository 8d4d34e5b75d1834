"""The grain input pipeline: any random-access source -> per-process batches of numpy arrays.

All processes walk the same shuffled order of the source (one seed, a fresh order every epoch); global
batch b is elements [b*G, (b+1)*G) of it, and process p reads only its slice [b*G + p*L, b*G + (p+1)*L)
(L = G / processes). So the global batch, and hence the run, is the same whatever the number of processes,
each process reads disjoint records, and `make_array_from_process_local_data` puts the slices in order.
Records are read with a thread pool and prefetched (decoders release the GIL; on 2 cores threads beat
processes). The iterator's state is a small dict saved in every checkpoint, so a resumed run sees exactly
the batches an uninterrupted one would.
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
    weights=None,
    keys=("video",),
    num_threads: int = 2,
    prefetch: int = 4,
    process_index: int | None = None,
    process_count: int | None = None,
) -> grain.IterDataset:
    """Infinite, shuffled stream of this process's slices of the global batches of `source`.

    `source` may be a list of sources mixed with `weights` (e.g. 90 % YT-Temporal-1B + 10 % DROID, the
    paper's Table S3): each is shuffled and repeated on its own, then grain interleaves them in those
    proportions. Records of a mixture keep only `keys`, the fields every source has, so they batch together.
    """
    process_index = jax.process_index() if process_index is None else process_index
    process_count = jax.process_count() if process_count is None else process_count
    batch = per_process_batch(global_batch, process_count)
    parts = list(source) if isinstance(source, list | tuple) else [source]
    streams = [grain.MapDataset.source(s).shuffle(seed=seed + i).repeat(None) for i, s in enumerate(parts)]
    if len(streams) == 1:
        dataset = streams[0]
    else:
        if weights is not None and len(weights) != len(streams):
            raise ValueError(f"{len(weights)} mixture weights for {len(streams)} sources")
        dataset = grain.MapDataset.mix(streams, weights).map(lambda record: {k: record[k] for k in keys})
    # Local batches in global order; this process takes every process_count-th, starting at its index.
    # MapDatasets are lazy, so the other processes' records are never read here.
    dataset = dataset.batch(batch, drop_remainder=True)[process_index::process_count]
    return dataset.to_iter_dataset(grain.ReadOptions(num_threads=num_threads, prefetch_buffer_size=prefetch))


def eval_batches(source, *, num_examples: int, batch_size: int):
    """The first `num_examples` records of an evaluation source, in order, batched (a finite list)."""
    dataset = grain.MapDataset.source(source)[:num_examples].batch(batch_size, drop_remainder=False)
    return list(dataset)
