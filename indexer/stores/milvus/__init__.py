"""The Milvus store (``store.MilvusStore``): the corpus lives in Milvus, so a replica holds no
state of its own. One concept a module:

- ``store``: ``MilvusStore`` itself (making, opening, reading, writing, publishing views), and
  the design in its docstring;
- ``client``: which Milvus and store (``MilvusTarget``), the client, index parameters, and how
  a failed Milvus request becomes ``StoreUnavailableError``;
- ``schema``: the three collections' schemas, the rows a write inserts, and the rows a
  search reads back;
- ``filters``: filters as Milvus boolean expressions;
- ``writes``: what the writer keeps between Milvus calls (its recent writes, queued puts);
- ``copies``: which rows to remove where two replicas' writes of one moment left two copies;
- ``view``: ``MilvusView``, a published view (the ``Reader``);
- ``versions``: which version of the store is served (the manifest, ``<name>__r<n>``);
- ``claims``: build claims, so that replicas started together build a store once;
- ``reindexing``: ``MilvusStore``'s reindex, and how replicas follow another's.

Import names from the module that defines them (and patch constants there, where they are read).
"""
