"""Sebek v3: the records a Sebek client (or dynapot's agent) sends from a high-interaction
honeypot, decoded and encoded without IO (`records`), and the per-sender counter that tells
lost records from late ones (`counter`)."""
