"""`sift eval`: what a model and a set of analysis profiles deliver on the labelled set.

dataset   the labelled documents and queries under eval/, checked on load
runner    analyses through the gateway with the analyzer's own code (prompt, repair, entities)
search    the documents through the archiver, then paraphrase queries against its search API
scoring   the metrics: pure functions over labelled records
report    the table and the JSON
cli       the command
"""
