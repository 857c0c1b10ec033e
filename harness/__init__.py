"""What the tests and the benchmarks both need to run the service for real: the service as a
process (``service``), a Milvus standalone server (``milvus``), and an HTTP load generator
(``load``). Neither the service nor the core imports it."""
