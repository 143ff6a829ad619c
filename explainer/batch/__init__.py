"""Batch justification of many (user, item) pairs: resumable, exactly-once, local or on Ray.

Modules, one job each:
  inputs.py   read JSONL / CSV / Parquet / text rows, validate them, plan per-user groups
  journal.py  the append-only JSONL output that is also the progress record (resume)
  worker.py   one user group -> ranker evidence -> Explainer -> output records
  runner.py   the local engine: bounded-concurrency asyncio over the worker
  ray_engine.py  the same worker inside Ray Data actors; only the driver writes
  cli.py      `explainrec explain-batch`
"""
