"""The grain pipeline: per-process shards, seeded shuffling, exact resume from the iterator state."""

import numpy as np
import pytest

from data_pipelines import pipeline


class IndexSource:
    """Record i is {"index": i}: batches show exactly which records were read."""

    def __init__(self, length=40):
        self.length = length

    def __len__(self):
        return self.length

    def __getitem__(self, index):
        return {"index": np.int64(index)}


def take(iterator, n):
    return [next(iterator)["index"].tolist() for _ in range(n)]


def test_processes_read_disjoint_shards_covering_the_source():
    seen = []
    for process in range(2):
        data = pipeline.train_dataset(
            IndexSource(), global_batch=8, seed=0, process_index=process, process_count=2
        )
        batches = take(iter(data), 5)  # one epoch of this process's 20 records
        assert all(len(b) == 4 for b in batches)  # its share of the global batch
        seen.append(sorted(sum(batches, [])))
    assert set(seen[0]).isdisjoint(seen[1])
    assert sorted(seen[0] + seen[1]) == list(range(40))


def test_global_batches_do_not_depend_on_the_number_of_processes():
    one = take(iter(pipeline.train_dataset(IndexSource(), global_batch=8, seed=2)), 7)
    shards = [
        take(
            iter(
                pipeline.train_dataset(
                    IndexSource(), global_batch=8, seed=2, process_index=p, process_count=4
                )
            ),
            7,
        )
        for p in range(4)
    ]
    assert [sum((shard[b] for shard in shards), []) for b in range(7)] == one


def test_shuffle_depends_on_the_seed_and_changes_each_epoch():
    first = take(iter(pipeline.train_dataset(IndexSource(), global_batch=8, seed=0)), 10)
    again = take(iter(pipeline.train_dataset(IndexSource(), global_batch=8, seed=0)), 10)
    other = take(iter(pipeline.train_dataset(IndexSource(), global_batch=8, seed=1)), 10)
    assert first == again and first != other
    epoch_1, epoch_2 = sum(first[:5], []), sum(first[5:], [])
    assert sorted(epoch_1) == sorted(epoch_2) == list(range(40)) and epoch_1 != epoch_2


def test_iterator_state_resumes_exactly():
    data = pipeline.train_dataset(IndexSource(), global_batch=8, seed=3)
    iterator = iter(data)
    take(iterator, 7)
    state = iterator.get_state()
    expected = take(iterator, 6)
    resumed = iter(data)
    resumed.set_state(state)
    assert take(resumed, 6) == expected


class TaggedSource(IndexSource):
    def __init__(self, tag, length=1000):
        super().__init__(length)
        self.tag = tag

    def __getitem__(self, index):
        return {"index": np.int64(index), "source": np.int64(self.tag), "only_here": np.zeros(self.tag + 1)}


def test_mixtures_follow_their_weights_and_keep_common_keys():
    data = pipeline.train_dataset(
        [TaggedSource(0), TaggedSource(1)],
        weights=[0.9, 0.1],
        global_batch=20,
        seed=0,
        keys=("index", "source"),
    )
    batches = [next(iterator) for iterator in [iter(data)] for _ in range(50)]
    assert set(batches[0]) == {"index", "source"}
    tags = np.concatenate([b["source"] for b in batches])
    assert abs(tags.mean() - 0.1) < 0.02  # 1000 draws
    again = [next(iterator) for iterator in [iter(data)] for _ in range(50)]
    assert all((a["index"] == b["index"]).all() for a, b in zip(batches, again, strict=True))
    with pytest.raises(ValueError, match="3 mixture weights for 2 sources"):
        pipeline.train_dataset([TaggedSource(0), TaggedSource(1)], weights=[1, 1, 1], global_batch=4, seed=0)


def test_batch_must_split_over_processes():
    with pytest.raises(ValueError, match="batch_size 9 is not divisible by the 2 processes"):
        pipeline.per_process_batch(9, process_count=2)


def test_eval_batches_are_the_first_records_in_order():
    batches = pipeline.eval_batches(IndexSource(), num_examples=10, batch_size=4)
    assert [b["index"].tolist() for b in batches] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
