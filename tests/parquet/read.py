"""Reads Parquet files with pyarrow (an independent reader) and prints, as one JSON object per
file and line, each file's columns with their Arrow types and its rows (timestamps as UTC ms).

Usage: python read.py FILE...
"""
import json
import sys

import pyarrow as pa
import pyarrow.parquet as pq


def value(v):
    if hasattr(v, "timestamp"):
        return int(round(v.timestamp() * 1000))
    return v


for path in sys.argv[1:]:
    table = pq.read_table(path)
    columns = [{"name": f.name, "type": str(f.type)} for f in table.schema]
    rows = [{k: value(v) for k, v in row.items()} for row in table.to_pylist()]
    meta = pq.ParquetFile(path).metadata
    print(json.dumps({"path": path, "columns": columns, "rows": rows, "created_by": meta.created_by}))
