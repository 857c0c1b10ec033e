"""The FAISS store (``store.FaissStore``): the corpus in a local directory, searched in memory.
One concept a module:

- ``store``: ``FaissStore`` itself (opening, reading, writing, refresh, merges, reindex), and
  the design in its docstring;
- ``state``: the in-memory state a writer changes (``LocalIndex``) and the immutable views
  searches read (``LocalView``), and how a version is saved, loaded and verified;
- ``vectors``: the FAISS index and the vectors written since the last merge;
- ``keyword``: the BM25 postings (segments) and their statistics;
- ``columns``: document metadata as typed columns, so filters run vectorised;
- ``arrays``: the append-only arrays views share with the writer;
- ``translog``: the write-ahead log; ``operations``: its records (puts and deletes);
- ``layout``: the directory (versions, ``CURRENT``, ``LOCK``) and durable writes (fsync, rename);
- ``snapshot``: archives of a live index, and restoring them.
"""
