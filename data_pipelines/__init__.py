"""Everything that turns bytes on disk into batches: record formats, video decoding, sources, grain pipelines."""
