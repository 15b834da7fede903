"""Shipped text-coding models (binary assets, frozen once released; see spec/text-coding.md)."""
