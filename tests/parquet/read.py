"""Reads Parquet files with pyarrow (an independent reader) and prints, as one JSON object per
file and line, each file's columns with their Arrow types and its rows (timestamps as UTC ms).
With --hive BASE, the files are read as one Hive-partitioned dataset under BASE instead
(`carrier=<id>/day=<day>/...`: the partition columns come from the path), printed as one object.

Usage: python read.py FILE...
       python read.py --hive BASE FILE...
"""
import json
import sys

import pyarrow.dataset as ds
import pyarrow.parquet as pq


def value(v):
    if hasattr(v, "timestamp"):
        return int(round(v.timestamp() * 1000))
    return v


def dump(table, **extra):
    columns = [{"name": f.name, "type": str(f.type)} for f in table.schema]
    rows = [{k: value(v) for k, v in row.items()} for row in table.to_pylist()]
    print(json.dumps({"columns": columns, "rows": rows, **extra}))


args = sys.argv[1:]
if args[:1] == ["--hive"]:
    base, files = args[1], args[2:]
    dataset = ds.dataset(files, format="parquet", partitioning="hive", partition_base_dir=base)
    dump(dataset.to_table())
else:
    for path in args:
        f = pq.ParquetFile(path)
        dump(f.read(), path=path, created_by=f.metadata.created_by)
