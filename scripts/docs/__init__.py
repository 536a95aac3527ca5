"""`make docs`: the references generated from the code (configuration, events, AsyncAPI)."""
