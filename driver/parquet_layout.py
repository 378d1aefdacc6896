"""How the build lays out the Parquet files of its Delta tables: what the writers and maintenance's
compaction share."""

from __future__ import annotations

from deltalake import WriterProperties

# Rows per Parquet row group in every table the build writes. The Delta writer holds a row group's
# columns until it is full: at parquet's default of 1M rows, writing the standard library's 3.1M
# points-to rows raised the process's peak by 160-250 MB, at 128K rows by 0-90 MB (measured).
ROW_GROUP_ROWS = 128 * 1024
WRITER_PROPERTIES = WriterProperties(max_row_group_size=ROW_GROUP_ROWS)
