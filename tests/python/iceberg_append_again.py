"""Append every row of a Sluice Iceberg table to it again, as another
writer would (pyiceberg, the SQL catalog on SQLite): each row then has a
twin equal in every column. Prints the rows before and after as JSON.

    iceberg_append_again.py WAREHOUSE NAMESPACE.TABLE
"""
import json
import os
import sys

from pyiceberg.catalog.sql import SqlCatalog

warehouse = os.path.abspath(sys.argv[1])
catalog = SqlCatalog("sluice", uri=f"sqlite:///{warehouse}/catalog.db", warehouse=f"file://{warehouse}")
table = catalog.load_table(sys.argv[2])
rows = table.scan().to_arrow()
table.append(rows)
print(json.dumps({"before": rows.num_rows, "after": table.scan().to_arrow().num_rows}))
