"""User tables have no static models: their classes are built at run time by
`mutant.classes` and carry this module as their `__module__`."""
