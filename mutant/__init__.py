"""Mutant: tables and fields defined at run time, on Django's schema editor."""
