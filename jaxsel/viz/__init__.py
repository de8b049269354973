"""Figures (matplotlib, Agg backend chosen per figure, never at import)."""
