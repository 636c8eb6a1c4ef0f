"""Faust agents: one module per agent; the logic they call lives in plain modules beside them."""
