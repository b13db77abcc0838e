"""deploygym documentation: Sphinx sources and the generators that build pages from the code."""
