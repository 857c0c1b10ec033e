from indexer.cli import app

app(prog_name="python -m indexer")
