"""How the build lays out the Parquet files of its Delta tables: what the writers and maintenance's
compaction share."""

from __future__ import annotations

from deltalake import WriterProperties

# Rows per Parquet row group in every table the build writes. The Delta writer holds a row group's
# columns until it is full: at parquet's default of 1M rows, writing the standard library's 3.1M
# points-to rows raised the process's peak by 160-250 MB, at 128K rows by 0-90 MB (measured).
ROW_GROUP_ROWS = 128 * 1024
# A string column's statistics keep at most this many bytes of its bounds (a cut maximum is raised to
# stay a bound). File ids (37 ASCII characters) stay whole, so a file's bounds prune a by-file replace.
# Without a limit the bounds are kept whole in every commit of the Delta log, which each open of the
# table replays: a run record is ~1 MB on the standard library, stored twice in each commit of `_runs`.
STATS_STRING_CHARS = 64
WRITER_PROPERTIES = WriterProperties(max_row_group_size=ROW_GROUP_ROWS, statistics_truncate_length=STATS_STRING_CHARS)
