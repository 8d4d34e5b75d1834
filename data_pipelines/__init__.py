"""Everything that turns bytes on disk into batches: records, video decoding, sources, grain pipelines."""
