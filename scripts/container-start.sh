#!/bin/sh
# The container image's command (/usr/local/bin/search-start): serve with `python -m app`.
#
# With the default FAISS store that is all: the image serves its baked seed index, or whatever is
# mounted at /srv/index, and never builds one at start. With SEARCH_STORE=milvus it first fills
# the collection SEARCH_MILVUS_COLLECTION at SEARCH_MILVUS_URI from the seed articles in
# /srv/seeds, only when it is missing: a collection that exists holds the live corpus of every
# replica and is served as it is, and a replica starting while another fills it waits for that
# (`python -m indexer build --store milvus --if-stale`).
set -eu

if [ "${SEARCH_STORE:-faiss}" = milvus ]; then
    case "${SEARCH_MILVUS_URI:-}" in
        *://*) ;;
        *)
            echo "error: SEARCH_STORE=milvus: set SEARCH_MILVUS_URI to a Milvus server" \
                "(http://host:19530); the image has no Milvus Lite for a local file" >&2
            exit 2
            ;;
    esac
    # In the background, so that a SIGTERM (podman stop) reaches the build, or the wait for
    # another replica's build, at once: as PID 1 this shell would otherwise ignore it.
    python -m indexer build --source /srv/seeds --store milvus --if-stale --no-progress &
    build=$!
    trap 'kill -TERM "$build" 2>/dev/null || true' TERM INT
    status=0
    wait "$build" || status=$?
    # A trapped signal ends `wait` early; the build is still exiting.
    while kill -0 "$build" 2>/dev/null; do
        wait "$build" || status=$?
    done
    trap - TERM INT
    if [ "$status" -ne 0 ]; then
        exit "$status"
    fi
fi

exec python -m app
