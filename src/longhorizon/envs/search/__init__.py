"""Search: multi-hop questions over a generated local corpus, answered with BM25 search and document reads (ASearcher)."""
