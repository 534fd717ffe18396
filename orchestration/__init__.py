"""What workflows, activities and their callers share, below all of them: workflow inputs and
policies, the models activities return, workflow ids, search attributes, business metrics,
and the client that starts workflows by name.

Imports point downward: ``workflows`` and ``activities`` use this package; it uses neither."""
