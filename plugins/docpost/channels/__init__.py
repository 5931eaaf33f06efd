"""Delivery channels: SF1601 KombiPostAfsend (Digital Post with the physical fallback)."""
