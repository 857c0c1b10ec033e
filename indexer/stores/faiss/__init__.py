"""The FAISS store (``store.FaissStore``): the corpus in a local directory, searched in memory.
One concept a module:

- ``kind``: the store as the registry offers it (``FAISS``): settings to a directory, and the
  build policy of a local index; ``settings``: its settings (``SEARCH_INDEX_DIR``, ...);
- ``store``: ``FaissStore`` itself (opening, reading, writing, refresh, merges, reindex), and
  the design in its docstring;
- ``state``: the in-memory state a writer changes (``LocalIndex``) and the immutable views
  searches read (``LocalView``), and how a version is saved, loaded and verified;
- ``merges``: when to merge, and replaying writes onto the index a merge or reindex builds;
- ``vectors``: the FAISS index and the vectors written since the last merge;
- ``keyword``: the BM25 postings (segments) and their statistics;
- ``columns``: document metadata as typed columns, so filters run vectorised;
- ``arrays``: the append-only arrays views share with the writer;
- ``translog``: the write-ahead log; ``operations``: its records (puts and deletes);
- ``layout``: the directory (versions, ``CURRENT``, ``LOCK``) and writing a whole index
  (``write_index``), durably (``indexer.durable``: fsync, rename);
- ``snapshot``: archives of a live index, and restoring them.
"""
