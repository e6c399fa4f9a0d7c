"""Everything a person sees: the table builder, the generated admin, imports."""
