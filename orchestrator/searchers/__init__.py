"""Searchers propose configurations; see `base.Searcher` for the interface."""
