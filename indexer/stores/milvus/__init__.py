"""The Milvus store (``store.MilvusStore``): the corpus lives in Milvus, so a replica holds no
state of its own. One concept a module:

- ``kind``: the store as the registry offers it (``MILVUS``): settings to a ``MilvusTarget``,
  and the build policy of a shared store; ``settings``: its settings (``SEARCH_MILVUS_*``);
- ``store``: ``MilvusStore`` itself (making, opening, writing, publishing views), and the
  design in its docstring;
- ``reads``: ``MilvusReads``, the reads of a version's collections, which the store, its views
  and its reindexer share (searches, documents as last written, row queries);
- ``view``: ``MilvusView``, a published view (the ``Reader``);
- ``reindexing``: ``MilvusReindexer``, the store's reindex and how it follows another
  process's;
- ``client``: which Milvus and store (``MilvusTarget``), the client, index parameters, and how
  a failed Milvus request becomes ``StoreUnavailableError``;
- ``schema``: the three collections' schemas, the rows a write inserts and deletes, and the
  rows a search reads back;
- ``bulk``: a big build's rows imported from files the server reads, where it can;
- ``terms``: what Milvus's BM25 function reads: our analyser's terms (``indexer.keyword``),
  so that keyword search ranks as on the FAISS store;
- ``filters``: filters as Milvus boolean expressions;
- ``writes``: what the writer keeps between Milvus calls (its recent writes, queued puts);
- ``copies``: which rows to remove where two writes left two copies of a document (two
  replicas' writes of one moment, or a replica killed between a write's insert and delete);
- ``numbering``: how a replica numbers its writes (unique across replicas: a slot each), and
  the row it keeps in the store's meta (its highest number, its writes under way, a heartbeat);
- ``versions``: which version of the store is served (the manifest, ``<name>__r<n>``);
- ``claims``: build claims, so that replicas started together build a store once, and
  numbering slots.

Names used by another module are public (``make lint`` refuses an import of an underscored
name); import them from the module that defines them (and patch constants there, where they
are read).
"""
